"""A local AWS Lambda simulator: moto for state, a runtime that really runs the command.

Import-light on purpose: the pytest plugin in this package is loaded into every pytest run, so
``LambdaSimulator`` (and aiohttp with it) is only imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FaultRule
    from .simulator import LambdaSimulator

__all__ = ["FaultRule", "LambdaSimulator"]


def __getattr__(name: str) -> Any:
    if name == "LambdaSimulator":
        from .simulator import LambdaSimulator

        return LambdaSimulator
    if name == "FaultRule":
        from .faults import FaultRule

        return FaultRule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
