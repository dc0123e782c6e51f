"""Backend objects: documents a backend keeps beside its containers, by kind and key.

The core store knows nothing of what they mean (a backend's cloud resources shared by several
containers, say: the Lambda backend's functions, one per image configuration). A document is a JSON
text the backend makes and reads; the store keeps it durable and serves reads from memory.
"""

from __future__ import annotations

import json
from typing import Final

from sockerless.errors import InvalidParameter
from sockerless.store.database import Database, Plan, Statement

__all__ = ["BackendObjects"]

_KIND_MAX: Final = 64
_KEY_MAX: Final = 256


class BackendObjects:
    """The ``backend_objects`` table and its memory index; made by the store at open."""

    def __init__(self, database: Database, rows: list[tuple[str, str, str]]) -> None:
        self._db = database
        self._documents: dict[str, dict[str, str]] = {}
        for kind, key, document in rows:
            self._documents.setdefault(kind, {})[key] = document

    @classmethod
    async def load(cls, database: Database) -> BackendObjects:
        rows = await database.fetch("SELECT kind, key, document FROM backend_objects")
        return cls(database, [(str(kind), str(key), str(document)) for kind, key, document in rows])

    def get(self, kind: str, key: str) -> str | None:
        """The document stored under ``kind`` and ``key``, or None."""
        return self._documents.get(kind, {}).get(key)

    def all(self, kind: str) -> dict[str, str]:
        """Every document of ``kind``, by key (a new dict)."""
        return dict(self._documents.get(kind, {}))

    async def put(self, kind: str, key: str, document: str) -> None:
        """Insert or replace; durable when it returns. ``InvalidParameter`` for a document that is not
        JSON, or an empty or overlong kind or key."""
        _check(kind, key)
        try:
            json.loads(document)
        except ValueError as exc:
            raise InvalidParameter(f"backend object {kind}/{key}: the document is not JSON ({exc})") from None
        statement = Statement(
            "INSERT INTO backend_objects (kind, key, document) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, key) DO UPDATE SET document = excluded.document",
            [(kind, key, document)],
        )

        def apply() -> None:
            self._documents.setdefault(kind, {})[key] = document

        await self._db.write(lambda: Plan([statement], apply))

    async def delete(self, kind: str, key: str) -> None:
        """Remove the object (nothing to do when there is none); durable when it returns."""
        statement = Statement("DELETE FROM backend_objects WHERE kind = ? AND key = ?", [(kind, key)])

        def apply() -> None:
            self._documents.get(kind, {}).pop(key, None)

        await self._db.write(lambda: Plan([statement], apply))


def _check(kind: str, key: str) -> None:
    if not 0 < len(kind) <= _KIND_MAX or not 0 < len(key) <= _KEY_MAX:
        raise InvalidParameter(
            f"invalid backend object {kind!r}/{key!r}: kind 1-{_KIND_MAX}, key 1-{_KEY_MAX} characters"
        )
