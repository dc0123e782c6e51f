"""The simulator's settings: one frozen object, built once at start-up."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from typing import Any

from attrs import field, frozen, validators

from .faults import FaultRule
from .quotas import DEFAULT_CONCURRENCY_LIMIT, DEFAULT_CONTROL_PLANE_RATE, DEFAULT_GET_FUNCTION_RATE
from .state import DEFAULT_PENDING_SECONDS, StateRule

__all__ = ["DEFAULT_ROLE_NAME", "SimulatorConfig", "require_loopback"]

DEFAULT_ROLE_NAME = "sockerless-lambda-exec"


def require_loopback(host: str) -> None:
    """Refuse any address but loopback: whoever reaches the port runs commands on this machine."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: the Lambda simulator runs commands on this machine "
            "without isolation, so it binds to loopback only (use 127.0.0.1 or ::1)"
        )


def _loopback(_: object, __: object, value: str) -> None:
    require_loopback(value)


def _positive_or_none(_: object, attribute: Any, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive or None (unlimited), got {value}")


def _rule_tuple(rules: Iterable[FaultRule]) -> tuple[FaultRule, ...]:
    return tuple(rules)


def _state_rule_tuple(rules: Iterable[StateRule]) -> tuple[StateRule, ...]:
    return tuple(rules)


def _float_tuple(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(value) for value in values)


@frozen
class SimulatorConfig:
    """Settings of one simulator; see ``LambdaSimulator`` for what each one does."""

    host: str = field(default="127.0.0.1", validator=_loopback)
    port: int = field(default=0, validator=[validators.ge(0), validators.le(65535)])
    moto_url: str | None = None
    region: str = "us-east-1"
    role_name: str = DEFAULT_ROLE_NAME
    pending_seconds: float = field(default=DEFAULT_PENDING_SECONDS, validator=validators.ge(0.0))
    seed: int | None = None
    faults: tuple[FaultRule, ...] = field(default=(), converter=_rule_tuple)
    event_retry_delays: tuple[float, ...] = field(default=(60.0, 120.0), converter=_float_tuple)
    log_flush_seconds: float = field(default=1.0, validator=validators.gt(0.0))
    max_connections: int = field(default=1024, validator=validators.ge(1))
    control_plane_rate: float | None = field(default=DEFAULT_CONTROL_PLANE_RATE, validator=_positive_or_none)
    """Requests/s of Lambda's control-plane bucket (CreateFunction, DeleteFunction, ...); None: unlimited."""
    concurrency_limit: int | None = field(default=DEFAULT_CONCURRENCY_LIMIT, validator=_positive_or_none)
    """Invocations running at once in the account (Lambda's default: 1000; new accounts get as little as
    10); a synchronous Invoke beyond it is throttled. None: unlimited."""
    get_function_rate: float | None = field(default=DEFAULT_GET_FUNCTION_RATE, validator=_positive_or_none)
    """Requests/s of GetFunction's own bucket; None: unlimited."""
    state_rules: tuple[StateRule, ...] = field(default=(), converter=_state_rule_tuple)
    """Rules that put matching functions in a state (Failed, Inactive, ...) or fail their updates."""
    inactive_after_seconds: float | None = field(default=None, validator=_positive_or_none)
    """Idle time after which an Active function is Inactive (Lambda: weeks); None: never."""
    deleting_seconds: float = field(default=0.0, validator=validators.ge(0.0))
    """How long a DeleteFunction keeps the function ``Deleting`` before it is gone (0: at once)."""
    child_path: str = field(factory=lambda: os.environ.get("PATH", os.defpath))
    """``PATH`` of the commands: the host's, since they run on the host (a function's own PATH wins)."""
