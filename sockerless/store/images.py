"""Images as the store keeps them: one JSON document per normalised reference, and the memory index
that resolves any spelling of a reference, an image ID or a unique ID prefix (see docs/store.md)."""

from __future__ import annotations

import bisect
import json
import re
from typing import Final

from sockerless.errors import InvalidParameter, NotFound
from sockerless.references import normalize_reference, parse_reference
from sockerless.store.prefixes import prefix_matches
from sockerless.store.records import ImageRecord
from sockerless.wire import converter, describe_structure_error

__all__ = ["ImageIndex", "check_image", "decode_image", "encode_image"]

_IMAGE_ID = re.compile(r"sha256:[a-f0-9]{64}")
_ID_PREFIX: Final = "sha256:"
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def check_image(record: ImageRecord) -> None:
    """Normalise the reference in place; ``InvalidParameter`` for a bad reference or image ID."""
    record.reference = normalize_reference(record.reference)
    if not _IMAGE_ID.fullmatch(record.id):
        raise InvalidParameter(f"invalid image ID {record.id!r}: expected sha256:<64 lowercase hex>")


def encode_image(record: ImageRecord) -> str:
    try:
        return _ENCODER.encode(converter.unstructure(record, ImageRecord))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"image {record.reference} cannot be stored: its extra must hold JSON values ({exc})"
        ) from exc


def decode_image(text: str) -> ImageRecord:
    """A record from its stored JSON; ``ValueError`` saying what is wrong with it."""
    try:
        return converter.structure(json.loads(text), ImageRecord)
    except Exception as exc:
        raise ValueError(describe_structure_error(exc)) from exc


class ImageIndex:
    """By normalised reference, references by image ID, and image IDs sorted for prefix search.

    Records are the caller's live objects; the ID each was indexed under is kept apart, so a record
    whose ``id`` was changed before it is saved again is still found and unindexed correctly.
    """

    def __init__(self) -> None:
        self._by_reference: dict[str, ImageRecord] = {}
        self._indexed_ids: dict[str, str] = {}
        self._references_by_id: dict[str, set[str]] = {}
        self._sorted_ids: list[str] = []

    def __contains__(self, reference: str) -> bool:
        return reference in self._by_reference

    def by_reference(self) -> list[ImageRecord]:
        return [self._by_reference[reference] for reference in sorted(self._by_reference)]

    def with_id(self, image_id: str) -> list[ImageRecord]:
        """The records of one image ID (each a reference to it), by reference."""
        return [
            self._by_reference[reference] for reference in sorted(self._references_by_id.get(image_id, ()))
        ]

    def resolve(self, ref: str) -> ImageRecord:
        record = self._by_reference.get(ref)
        if record is not None:
            return record
        image_id = ref if ref.startswith(_ID_PREFIX) else _ID_PREFIX + ref
        references = self._references_by_id.get(image_id)
        if references:
            return self._by_reference[min(references)]
        record = self._by_any_spelling(ref)
        if record is not None:
            return record
        matches = prefix_matches(self._sorted_ids, image_id, skip=len(_ID_PREFIX))
        if len(matches) == 1:
            return self._by_reference[min(self._references_by_id[matches[0]])]
        if matches:
            raise InvalidParameter(f"multiple images found with provided prefix: {ref}")
        raise NotFound(f"No such image: {ref}")

    def put(self, record: ImageRecord) -> None:
        """Index ``record`` under its (normalised) reference, replacing what was there."""
        self.remove(record.reference)
        self._by_reference[record.reference] = record
        self._indexed_ids[record.reference] = record.id
        references = self._references_by_id.setdefault(record.id, set())
        if not references:
            bisect.insort(self._sorted_ids, record.id)
        references.add(record.reference)

    def remove(self, reference: str) -> None:
        image_id = self._indexed_ids.pop(reference, None)
        if image_id is None:
            return
        del self._by_reference[reference]
        references = self._references_by_id[image_id]
        references.discard(reference)
        if not references:
            del self._references_by_id[image_id]
            del self._sorted_ids[bisect.bisect_left(self._sorted_ids, image_id)]

    def _by_any_spelling(self, ref: str) -> ImageRecord | None:
        try:
            wanted = parse_reference(ref)
        except InvalidParameter:
            return None
        record = self._by_reference.get(str(wanted))
        if record is not None or not wanted.digest:
            return record
        # Pinned by digest: any tag of the same repository whose content has that digest.
        for reference in sorted(self._by_reference):
            candidate = self._by_reference[reference]
            stored = parse_reference(reference)
            if stored.repository == wanted.repository and wanted.digest in (candidate.digest, stored.digest):
                return candidate
        return None
