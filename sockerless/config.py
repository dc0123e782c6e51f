"""Configuration: one attrs object per process, built once from defaults < YAML file < environment < flags.

PARTIAL - the loader is being implemented. ``setting()`` and the section classes are the contract.

Every section is an attrs class whose fields are declared with :func:`setting`, which carries the
help text, the allowed values and whether the value is a secret. Environment variables are
``SOCKERLESS_<SECTION>_<KEY>``; flags are ``--<section>-<key>``; a YAML file has one mapping per section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = ["setting"]


def setting(
    default: Any = attrs.NOTHING,
    *,
    help: str,
    secret: bool = False,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    required: bool = False,
    factory: Any = None,
) -> Any:
    """Declare a configuration key. ``required`` keys have no default and must be set by some layer."""
    metadata = {
        "help": help,
        "secret": secret,
        "choices": tuple(choices) if choices is not None else None,
        "minimum": minimum,
        "maximum": maximum,
        "required": required,
    }
    if factory is not None:
        return attrs.field(factory=factory, metadata=metadata)
    if required and default is attrs.NOTHING:
        default = None
    return attrs.field(default=default, metadata=metadata)
