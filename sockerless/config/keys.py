"""A configuration key: how a section declares it, and how each layer names it.

A section is an attrs class; each of its keys is a field made by :func:`setting`, which keeps the help
text, whether the value is a secret and what it accepts in one :class:`KeyInfo`. The loader, the flags,
``--print-config`` and the reference all read that one declaration, so a key is described once.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from attrs import frozen

__all__ = [
    "ENV_PREFIX",
    "KeyInfo",
    "env_name",
    "flag_name",
    "is_sequence",
    "item_type",
    "key_info",
    "range_text",
    "section_keys",
    "setting",
    "unwrap_optional",
]

#: Environment variables of a key are ``SOCKERLESS_<SECTION>_<KEY>``.
ENV_PREFIX = "SOCKERLESS_"
# Where setting() keeps its KeyInfo in the field's metadata.
_METADATA_KEY = "sockerless.config"


@frozen
class KeyInfo:
    """What a key accepts besides its type, and how it is documented.

    ``check`` sees the typed value alone (an address, a file mode); checks that need several keys
    belong in the section's ``__attrs_post_init__``.
    """

    help: str = ""
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    check: Callable[[Any], object] | None = None

    @property
    def has_checks(self) -> bool:
        """Whether :meth:`check_value` can refuse anything."""
        return any(x is not None for x in (self.choices, self.minimum, self.maximum, self.check))

    def check_value(self, value: Any) -> None:
        """Raise ValueError, naming the value, when it is outside the choices or the range or fails
        ``check``; a list is checked item by item, and None (an unset optional key) passes."""
        if value is None:
            return
        for item in value if isinstance(value, list | tuple) else [value]:
            if self.choices is not None and item not in self.choices:
                raise ValueError(f"{item!r} is not one of {', '.join(str(c) for c in self.choices)}")
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            too_low = self.minimum is not None and item < self.minimum
            if too_low or (self.maximum is not None and item > self.maximum):
                raise ValueError(f"{_number_text(item)} is out of range ({range_text(self)})")
        if self.check is not None:
            self.check(value)


@frozen
class _ChecksKey:
    """The attrs validator of a key made by :func:`setting`: a section built in code is checked as the
    loader checks one built from configuration."""

    info: KeyInfo

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        self.info.check_value(value)


def setting(
    default: Any = attrs.NOTHING,
    *,
    help: str,
    secret: bool = False,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    required: bool = False,
    factory: Callable[[], Any] | None = None,
    check: Callable[[Any], object] | None = None,
) -> Any:
    """Declare a configuration key (an attrs field).

    ``required`` keys default to None and must be set, not empty, by some layer. ``choices``,
    ``minimum``/``maximum`` and ``check`` (a function of the value that raises ValueError) are
    enforced whenever the section is built, and reported by the loader with the key and its source.
    """
    info = KeyInfo(
        help=help,
        secret=secret,
        choices=tuple(choices) if choices is not None else None,
        minimum=minimum,
        maximum=maximum,
        required=required,
        check=check,
    )
    metadata = {_METADATA_KEY: info}
    validator = _ChecksKey(info) if info.has_checks else None
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata, validator=validator)
    if required and default is attrs.NOTHING:
        default = None
    return attrs.field(default=default, metadata=metadata, validator=validator)


def key_info(attribute: attrs.Attribute[Any]) -> KeyInfo:
    """The key's declaration; a plain attrs field (not made by :func:`setting`) accepts any value."""
    info = attribute.metadata.get(_METADATA_KEY)
    return info if isinstance(info, KeyInfo) else KeyInfo()


def section_keys(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    """The keys of a section, in declaration order, with their annotations resolved to types."""
    attrs.resolve_types(cls)
    return tuple(a for a in attrs.fields(cls) if a.init)


def env_name(section: str, key: str) -> str:
    """``SOCKERLESS_SERVER_LOG_LEVEL`` for ``server.log_level``."""
    return f"{ENV_PREFIX}{section}_{key}".upper().replace("-", "_")


def flag_name(section: str, key: str) -> str:
    """``--server-log-level`` for ``server.log_level``."""
    return f"--{section}-{key}".replace("_", "-")


def unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``X | None`` as ``(X, True)``; any other type as ``(kind, False)``."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        members = [m for m in typing.get_args(kind) if m is not type(None)]
        if len(members) == 1 and len(typing.get_args(kind)) == 2:
            return members[0], True
        raise TypeError(f"unsupported setting type {kind!r}: only X | None unions are supported")
    return kind, False


def is_sequence(kind: Any) -> bool:
    """Whether a key of this type is a list (comma-separated in the environment and in flags)."""
    return kind in (list, tuple) or typing.get_origin(kind) in (list, tuple)


def item_type(kind: Any) -> Any:
    """The type of a list key's items: ``str`` for ``list[str]`` and ``tuple[str, ...]``."""
    arguments = [a for a in typing.get_args(kind) if a is not Ellipsis]
    return arguments[0] if arguments else Any


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def range_text(info: KeyInfo) -> str:
    """``1-10``, ``at least 1`` or ``at most 10``; empty when the key has no range."""
    low, high = info.minimum, info.maximum
    if low is not None and high is not None:
        return f"{_number_text(low)}-{_number_text(high)}"
    if low is not None:
        return f"at least {_number_text(low)}"
    if high is not None:
        return f"at most {_number_text(high)}"
    return ""
