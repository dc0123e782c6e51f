"""Query parameters of the internal API: how each kind of value is read, written and described.

A :class:`Param` names a query parameter on the wire and the keyword it becomes; its kind knows how
the server reads the text (a 400 saying what is wrong), how a client writes the value, and its JSON
Schema for ``docs/openapi.json``. Nothing else in the project parses these parameters.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from attrs import field, frozen

from sockerless.booleans import FALSE_WORDS, TRUE_WORDS, parse_bool
from sockerless.errors import InvalidParameter
from sockerless.filters import parse_filters
from sockerless.wire import parse_time

__all__ = [
    "Choice",
    "Filters",
    "Flag",
    "Integer",
    "Kind",
    "Limit",
    "Param",
    "Tail",
    "Text",
    "Time",
]

JSONObject = dict[str, Any]


class Kind(Protocol):
    """How one kind of query value is read, written and described."""

    def parse(self, name: str, raw: str | None) -> Any:
        """The value of ``raw`` (None when the parameter is absent); InvalidParameter if it is wrong."""
        ...

    def encode(self, value: Any) -> str | None:
        """The text for ``value``; None leaves the parameter out."""
        ...

    def schema(self) -> JSONObject: ...


@frozen
class Flag:
    """A boolean: ``1``/``0``, ``true``/``false``, ``yes``/``no`` (any case); absent or empty: the default."""

    default: bool = False

    def parse(self, name: str, raw: str | None) -> bool:
        if raw is None or raw == "":
            return self.default
        value = parse_bool(raw)
        if value is None:
            raise InvalidParameter(f"invalid boolean for {name!r}: {raw!r}")
        return value

    def encode(self, value: Any) -> str | None:
        return None if value is None else ("1" if value else "0")

    def schema(self) -> JSONObject:
        words = TRUE_WORDS | FALSE_WORDS
        spellings = {""} | words | {w.capitalize() for w in words} | {w.upper() for w in words}
        return {"type": "string", "enum": sorted(spellings), "description": "any case of these words"}


@frozen
class Integer:
    """A whole number; absent or empty is None."""

    def parse(self, name: str, raw: str | None) -> int | None:
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise InvalidParameter(f"invalid integer for {name!r}: {raw!r}") from None

    def encode(self, value: Any) -> str | None:
        return None if value is None else str(int(value))

    def schema(self) -> JSONObject:
        return {"type": "integer"}


@frozen
class Limit(Integer):
    """A positive count; absent, empty, zero or negative is no limit (None)."""

    def parse(self, name: str, raw: str | None) -> int | None:
        value = super().parse(name, raw)
        return value if value is not None and value > 0 else None


@frozen
class Text:
    """Free text; absent or empty is ``default``. ``required``: absent or empty is a 400."""

    default: str | None = None
    required: bool = False

    def parse(self, name: str, raw: str | None) -> str | None:
        if raw is None or raw == "":
            if self.required:
                raise InvalidParameter(f"the {name} query parameter is required")
            return self.default
        return raw

    def encode(self, value: Any) -> str | None:
        return None if value is None or value == "" else str(value)

    def schema(self) -> JSONObject:
        return {"type": "string", "minLength": 1} if self.required else {"type": "string"}


@frozen
class Choice:
    """One of the values of an enum; absent or empty is its ``default``."""

    enum_class: type[enum.StrEnum]
    default: enum.StrEnum

    def parse(self, name: str, raw: str | None) -> enum.StrEnum:
        if raw is None or raw == "":
            return self.default
        try:
            return self.enum_class(raw)
        except ValueError:
            allowed = ", ".join(member.value for member in self.enum_class)
            raise InvalidParameter(f"invalid {name} {raw!r}: expected {allowed}") from None

    def encode(self, value: Any) -> str | None:
        return None if value is None else str(self.enum_class(value).value)

    def schema(self) -> JSONObject:
        return {"type": "string", "enum": [m.value for m in self.enum_class], "default": self.default.value}


@frozen
class Tail:
    """``all`` (or absent, or negative) for every line, else how many of the last lines."""

    def parse(self, name: str, raw: str | None) -> int | None:
        if raw is None or raw in ("", "all"):
            return None
        try:
            value = int(raw)
        except ValueError:
            raise InvalidParameter(f"invalid {name} {raw!r}: expected 'all' or a number") from None
        return None if value < 0 else value

    def encode(self, value: Any) -> str | None:
        return "all" if value is None else str(int(value))

    def schema(self) -> JSONObject:
        return {"anyOf": [{"type": "string", "enum": ["all"]}, {"type": "integer"}]}


@frozen
class Time:
    """RFC 3339 or unix seconds (fractions allowed); absent, empty or ``0`` is None."""

    def parse(self, name: str, raw: str | None) -> dt.datetime | None:
        if raw is None or raw in ("", "0"):
            return None
        return parse_time(raw)

    def encode(self, value: Any) -> str | None:
        return None if value is None else f"{value.timestamp():.6f}"

    def schema(self) -> JSONObject:
        return {"type": "string", "description": "RFC 3339 or unix seconds (fractions allowed)"}


def _key_set(keys: Iterable[str]) -> frozenset[str]:
    return frozenset(keys)


@frozen
class Filters:
    """Docker's filters as JSON, in both encodings: ``{"k": ["v"]}`` or ``{"k": {"v": true}}``."""

    keys: frozenset[str] = field(converter=_key_set)

    def parse(self, name: str, raw: str | None) -> dict[str, list[str]]:
        return parse_filters(raw, self.keys)

    def encode(self, value: Any) -> str | None:
        if not value:
            return None
        return value if isinstance(value, str) else json.dumps(dict(value))

    def schema(self) -> JSONObject:
        values = {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {"type": "boolean"}},
            ]
        }
        return {
            "type": "object",
            "properties": {key: values for key in sorted(self.keys)},
            "additionalProperties": False,
        }


@frozen
class Param:
    """A query parameter: its wire ``name``, the ``arg`` it becomes (a keyword of the backend call, or
    a field of the route's options), its ``kind``, and what it means."""

    name: str
    kind: Kind
    description: str = ""
    arg: str = ""

    @property
    def keyword(self) -> str:
        return self.arg or self.name

    @property
    def json_encoded(self) -> bool:
        return isinstance(self.kind, Filters)

    @property
    def required(self) -> bool:
        return isinstance(self.kind, Text) and self.kind.required

    def parse(self, query: Mapping[str, str]) -> Any:
        return self.kind.parse(self.name, query.get(self.name))
