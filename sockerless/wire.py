"""The wire: Docker's JSON names, Docker's times, and the one converter between models and JSON.

Field names are snake_case in Python; the wire name (Docker's PascalCase, or whatever the contract
says) is derived by :func:`wire_name` or given explicitly with ``field(wire=...)``. Only
:data:`converter` turns attrs objects into JSON-ready data and back (the models in
:mod:`sockerless.models`, a backend's stored state), so business code never touches raw dicts.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import attrs
import cattrs
import cattrs.cols
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from sockerless.errors import InvalidParameter

__all__ = [
    "ZERO_TIME",
    "Encoded",
    "converter",
    "describe_structure_error",
    "encode_json",
    "encode_json_list",
    "field",
    "flat",
    "format_time",
    "parse_time",
    "python_names",
    "structure",
    "unstructure",
    "wire_name",
    "wire_names",
]

T = TypeVar("T")

ZERO_TIME = "0001-01-01T00:00:00Z"

# Abbreviations Docker spells in capitals; everything else is plain PascalCase.
_UPPER_WORDS = {"id": "ID", "oom": "OOM", "ncpu": "NCPU", "os": "OS", "ipc": "Ipc"}


def wire_name(attribute: attrs.Attribute[Any]) -> str:
    """The JSON name of an attribute: explicit ``wire`` metadata, else PascalCase of the Python name."""
    explicit = attribute.metadata.get("wire")
    if explicit is not None:
        return str(explicit)
    return "".join(part[:1].upper() + part[1:] for part in attribute.name.split("_"))


def field(*, wire: str | None = None, str_slice: bool = False, **kwargs: Any) -> Any:
    """An attrs field with wire metadata.

    ``str_slice`` marks Docker's ``strslice`` fields (``Cmd``, ``Entrypoint``, ``Shell``), which
    accept a bare string as well as a list.
    """
    metadata = dict(kwargs.pop("metadata", {}))
    if wire is not None:
        metadata["wire"] = wire
    if str_slice:
        metadata["str_slice"] = True
    return attrs.field(metadata=metadata, **kwargs)


# ---------------------------------------------------------------------------- time


def format_time(value: dt.datetime | None) -> str:
    """RFC 3339 with nanosecond-style precision as Docker prints it; None is Docker's zero time."""
    if value is None:
        return ZERO_TIME
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    text = value.replace(tzinfo=None).isoformat()  # the fraction only when there is one, as Go's
    return (text.rstrip("0") if value.microsecond else text) + "Z"


@attrs.frozen
class Encoded(Generic[T]):
    """An answer of type ``T`` already encoded as JSON (a backend's cached view): the server sends
    ``body`` as it is; a client decodes it like any other answer of that type."""

    body: bytes


def encode_json_list(items: Iterable[bytes]) -> bytes:
    """A JSON array of elements each encoded already."""
    return orjson.dumps([orjson.Fragment(item) for item in items])


def encode_json(value: Any) -> bytes:
    """JSON-ready data (what :func:`unstructure` gives) as compact UTF-8 JSON.

    A string with a lone surrogate (which a JSON body may carry as ``\\ud800``) is not valid UTF-8,
    so orjson refuses it; the standard encoder then writes it escaped, as it came."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time(text: str) -> dt.datetime | None:
    """Parse an RFC 3339 time (any fraction length), unix seconds with an optional fraction, or, as
    Docker's daemon does for filters such as ``until=24h``, a Go duration meaning that long ago."""
    text = text.strip()
    if not text or text == ZERO_TIME:
        return None
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except OverflowError:
        raise InvalidParameter(f"invalid time {text!r}: out of range") from None
    except (ValueError, OSError):
        pass
    parts = _GO_DURATION_PART.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        seconds = sum(float(number) * _GO_DURATION_UNITS[unit] for number, unit in parts)
        try:
            return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidParameter(f"invalid time {text!r}: out of range") from None
    body = text.replace("z", "Z").replace("Z", "+00:00")
    if "." in body:
        head, _, rest = body.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        body = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    try:
        parsed = dt.datetime.fromisoformat(body)
    except ValueError:
        raise InvalidParameter(f"invalid time {text!r}: expected RFC 3339 or unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


# ---------------------------------------------------------------------------- markers


def python_names(cls: type[T]) -> type[T]:
    """Mark a class whose wire names are its Python names (the capability report, a backend's own
    stored state)."""
    cls.__sockerless_snake__ = True  # type: ignore[attr-defined]
    return cls


def flat(cls: type[T]) -> type[T]:
    """Mark a class whose fields are all plain JSON values (no nested models): it unstructures with
    a single attribute fetch per field, which matters for ``docker ps -a`` over thousands of rows."""
    cls.__sockerless_flat__ = True  # type: ignore[attr-defined]
    return cls


# ---------------------------------------------------------------------------- the converter


def _strict(kind: type[Any], name: str) -> Callable[[Any, type[Any]], Any]:
    def hook(value: Any, _: type[Any]) -> Any:
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return value

    return hook


def _only(kind: Any, name: str, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, target: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        return inner(value, target)

    return hook


def _structure_float(value: Any, _: type[Any]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _structure_datetime(value: Any, _: type[Any]) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 time, got {type(value).__name__}")
    return dt.datetime.fromisoformat(value)


def _structure_str_slice(value: Any, _: type[Any]) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise TypeError("expected a string or a list of strings")


def wire_names(cls: type[Any]) -> dict[str, str]:
    """Each attribute's name on the wire, by its Python name."""
    snake = getattr(cls, "__sockerless_snake__", False)
    return {
        a.name: (a.name if snake and "wire" not in a.metadata else wire_name(a)) for a in attrs.fields(cls)
    }


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(float, _structure_float)
    # Stored records keep their times as ISO 8601 (wire models carry Docker's time strings instead).
    conv.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    # cattrs would happily turn "A=1" into ["A", "=", "1"] and a list into a mapping: refuse both.
    conv.register_structure_hook_factory(
        cattrs.cols.is_sequence, lambda t, c: _only(list, "a list", cattrs.cols.list_structure_factory(t, c))
    )
    conv.register_structure_hook_factory(
        cattrs.cols.is_mapping,
        lambda t, c: _only(Mapping, "an object", cattrs.cols.mapping_structure_factory(t, c)),
    )

    def structure_factory(cls: type[Any]) -> Callable[[Any, type[Any]], Any]:
        overrides = {}
        for attribute in attrs.fields(cls):
            hook = _structure_str_slice if attribute.metadata.get("str_slice") else None
            overrides[attribute.name] = override(rename=wire_names(cls)[attribute.name], struct_hook=hook)
        inner = make_dict_structure_fn(cls, conv, **overrides)  # type: ignore[arg-type]

        def structure_object(value: Any, target: type[Any]) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return inner(value, target)

        return structure_object

    def unstructure_factory(cls: type[Any]) -> Callable[[Any], Any]:
        overrides = {name: override(rename=wire) for name, wire in wire_names(cls).items()}
        inner = make_dict_unstructure_fn(cls, conv, **overrides)  # type: ignore[arg-type]
        if getattr(cls, "__sockerless_flat__", False):
            wires = tuple(wire_names(cls).values())
            fetch = operator.attrgetter(*wire_names(cls))
            return lambda obj: dict(zip(wires, fetch(obj), strict=True))
        return inner

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


converter = _make_converter()


def unstructure(value: Any) -> Any:
    """A model (or a list of models) as JSON-ready data with wire names."""
    return converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """Build a model from wire data; a shape error is a 400 naming the offending field."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise InvalidParameter(f"invalid {cls.__name__}: {describe_structure_error(exc)}") from None


def describe_structure_error(exc: BaseException) -> str:
    """One line naming each bad field (``Env: expected a list``) instead of cattrs' nested report."""
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, path="body")
        return "; ".join(messages) if messages else str(exc)
    return str(exc)
