"""Values as the layers give them, structured into sections by one cattrs converter.

A YAML file gives typed values (``true``, ``5``, ``[a, b]``); the environment and flags give strings
(``"yes"``, ``"5"``, ``"a,b"``). The converter's hooks accept both for each type a key may have, and
check each key's declared choices, range and ``check`` as they structure it, so that every bad key of
a section is found in one pass (cattrs' detailed validation) and reported as an :data:`Invalid`.
"""

from __future__ import annotations

import contextlib
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
from attrs import frozen
from cattrs.errors import AttributeValidationNote, ClassValidationError, ForbiddenExtraKeysError
from cattrs.gen import make_dict_structure_fn, override

from sockerless.booleans import parse_bool
from sockerless.config.errors import ConfigError
from sockerless.config.keys import is_sequence, item_type, key_info, section_keys, unwrap_optional

__all__ = [
    "AcrossKeys",
    "BadValue",
    "Invalid",
    "MissingKey",
    "SectionConverter",
    "UnknownKey",
    "describe",
]


@frozen
class BadValue:
    """A key's value that its type, choices, range or checks refuse; ``message`` names the value."""

    key: str
    message: str


@frozen
class UnknownKey:
    """A key the section does not have."""

    key: str


@frozen
class MissingKey:
    """A key without a default that no layer gave."""

    key: str


@frozen
class AcrossKeys:
    """A check across keys (the section's ``__attrs_post_init__``) refused the combination."""

    message: str


Invalid = BadValue | UnknownKey | MissingKey | AcrossKeys


def describe(value: object) -> str:
    """A value as an error message quotes it: strings as written, anything else with its YAML type."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


def _to_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {describe(value)}; quote the value in YAML")


def _to_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and (parsed := parse_bool(value)) is not None:
        return parsed
    raise ValueError(f"{describe(value)} is not a boolean (use true/false, yes/no, on/off or 1/0)")


def _to_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise ValueError(f"{describe(value)} is not an integer")


def _to_float(value: object, _: type) -> float:
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if not math.isfinite(number):
        raise ValueError(f"{describe(value)} is not a number")
    return number


def _is_optional(kind: Any) -> bool:
    try:
        return unwrap_optional(kind)[1]
    except TypeError:  # another union: cattrs refuses it with its own message
        return False


class SectionConverter:
    """The one converter of the configuration: builds a section from a mapping of its keys."""

    def __init__(self) -> None:
        converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
        converter.register_structure_hook(str, _to_str)
        converter.register_structure_hook(bool, _to_bool)
        converter.register_structure_hook(int, _to_int)
        converter.register_structure_hook(float, _to_float)
        converter.register_structure_hook_factory(_is_optional, lambda _: self._to_optional)
        converter.register_structure_hook_factory(is_sequence, lambda _: self._to_sequence)
        converter.register_structure_hook_factory(attrs.has, self._section_hook)
        self._cattrs = converter

    def structure_value(self, value: object, attribute: attrs.Attribute[Any]) -> Any:
        """One key's value as its type, checked against its declaration; a ValueError says why not."""
        typed = value if attribute.type is None else self._cattrs.structure(value, attribute.type)
        key_info(attribute).check_value(typed)
        return typed

    def structure_section(self, values: Mapping[str, object], cls: type[Any]) -> tuple[Any, list[Invalid]]:
        """The section built from ``values`` (keys not given take their defaults), or None and every
        problem found.

        The checks across keys (``__attrs_post_init__``) run only once every key given is valid on its
        own; once they pass, the section's own attrs validators run one by one, so that each failing
        one is reported and not only the first, as attrs would.
        """
        try:
            with attrs.validators.disabled():  # run one by one below; the keys' own checks ran in the hooks
                instance = self._cattrs.structure(dict(values), cls)
        except ClassValidationError as failed:
            return None, [item for error in failed.exceptions for item in _invalid(error, values)]
        found: list[Invalid] = []
        for attribute in attrs.fields(cls):
            if attribute.validator is not None:
                try:
                    attribute.validator(instance, attribute, getattr(instance, attribute.name))
                except ValueError as exc:
                    found.append(BadValue(attribute.name, str(exc)))
        return (None if found else instance), found

    def _to_optional(self, value: object, kind: Any) -> Any:
        if value is None or value == "":  # an empty variable or flag unsets the key
            return None
        return self._cattrs.structure(value, unwrap_optional(kind)[0])

    def _to_sequence(self, value: object, kind: Any) -> list[Any] | tuple[Any, ...]:
        if value is None:
            items: list[object] = []
        elif isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValueError(f"expected a list or a comma-separated string, got {describe(value)}")
        typed = [self._cattrs.structure(item, item_type(kind)) for item in items]
        return tuple(typed) if tuple in (kind, typing.get_origin(kind)) else typed

    def _section_hook(self, cls: type[Any]) -> Callable[[Mapping[str, Any], Any], Any]:
        """cattrs' structuring of the class, with each key structured by :meth:`structure_value`."""
        # Typed loosely: cattrs types **overrides, but mypy checks the unpacked dict against every
        # keyword parameter of make_dict_structure_fn.
        overrides: dict[str, Any] = {
            attribute.name: override(struct_hook=self._key_hook(attribute)) for attribute in section_keys(cls)
        }
        return make_dict_structure_fn(cls, self._cattrs, **overrides)

    def _key_hook(self, attribute: attrs.Attribute[Any]) -> Callable[[object, Any], Any]:
        return lambda value, _: self.structure_value(value, attribute)


def _invalid(error: Exception, values: Mapping[str, object]) -> list[Invalid]:
    """What one of cattrs' errors says, or the error itself raised again when it is a bug in a
    section class (a type no hook handles) rather than a problem with the configuration."""
    if isinstance(error, ForbiddenExtraKeysError):
        return [UnknownKey(key) for key in values if key in error.extra_fields]
    note = next((n for n in getattr(error, "__notes__", ()) if isinstance(n, AttributeValidationNote)), None)
    if note is None:  # raised by the class itself, once every key was structured
        if isinstance(error, ConfigError):
            return [AcrossKeys(problem) for problem in error.problems]
        if isinstance(error, ValueError | TypeError):
            return [AcrossKeys(str(error))]
    elif isinstance(error, KeyError):
        return [MissingKey(note.name)]
    elif isinstance(error, ValueError):
        return [BadValue(note.name, str(error))]
    raise error
