"""The backend's state: containers and images in SQLite with a memory index, their output, and the
removed containers.

``Store.open`` is the way in; ``docs/store.md`` describes the schema, durability and resolution rules.
"""

from __future__ import annotations

from sockerless.store.database import StoreError
from sockerless.store.logs import LogStore
from sockerless.store.objects import BackendObjects
from sockerless.store.records import ContainerRecord, ImageRecord
from sockerless.store.removed import RemovedContainer
from sockerless.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration
from sockerless.store.store import Store

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BackendObjects",
    "ContainerRecord",
    "ImageRecord",
    "LogStore",
    "Migration",
    "RemovedContainer",
    "Store",
    "StoreError",
]
