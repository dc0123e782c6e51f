"""The state store (being rewritten): records for now."""

from sockerless.store.records import ContainerRecord, ImageRecord

__all__ = ["ContainerRecord", "ImageRecord"]
