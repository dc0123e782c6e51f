"""The simulator's settings: one frozen object, built once at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from typing import Any

from attrs import field, frozen, validators

from .faults import FaultRule
from .quotas import DEFAULT_CONCURRENCY_LIMIT, DEFAULT_CONTROL_PLANE_RATE, DEFAULT_GET_FUNCTION_RATE
from .state import DEFAULT_PENDING_SECONDS, StateRule

__all__ = [
    "DEFAULT_EMPTY_PAGE_EVERY",
    "DEFAULT_EVENT_DELAY",
    "DEFAULT_LOG_DELIVERY_DELAY",
    "DEFAULT_ROLE_NAME",
    "SimulatorConfig",
    "require_loopback",
]

DEFAULT_ROLE_NAME = "sockerless-lambda-exec"
#: CloudWatch Logs shows an event a few seconds after it was written (typically 1-5 s).
DEFAULT_LOG_DELIVERY_DELAY = 2.0
#: FilterLogEvents answers an empty page with a nextToken now and then while it scans.
DEFAULT_EMPTY_PAGE_EVERY = 10
#: An Event invocation waits in Lambda's internal queue before it runs.
DEFAULT_EVENT_DELAY = 0.5


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


def _regex_or_none(_: object, attribute: Any, value: str | None) -> None:
    if value is None:
        return
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{attribute.name} is not a regular expression: {exc}") from None


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
    log_delivery_delay: float = field(default=DEFAULT_LOG_DELIVERY_DELAY, validator=validators.ge(0.0))
    """Seconds after it is written before a log event shows to FilterLogEvents/GetLogEvents (AWS: a
    few seconds)."""
    late_log_probability: float = field(default=0.0, validator=[validators.ge(0.0), validators.le(1.0)])
    """Share of log events delivered ``late_log_seconds`` later still (chosen by a hash of the seed
    and the event: the same for every read)."""
    late_log_seconds: float = field(default=30.0, validator=validators.ge(0.0))
    late_log_match: str | None = field(default=None, validator=_regex_or_none)
    """Log events whose message this regular expression finds are late too (rule-driven lateness,
    e.g. ``^END RequestId`` for a run's END alone)."""
    empty_page_every: int = field(default=DEFAULT_EMPTY_PAGE_EVERY, validator=validators.ge(0))
    """Every Nth FilterLogEvents answers an empty page that carries a nextToken; 0: never."""
    event_delay: float = field(default=DEFAULT_EVENT_DELAY, validator=validators.ge(0.0))
    """Seconds an Event invocation waits in Lambda's queue before it runs."""
    event_duplicate_probability: float = field(
        default=0.0, validator=[validators.ge(0.0), validators.le(1.0)]
    )
    """Chance that an Event invocation is delivered twice (same request ID; seeded dice)."""
    event_duplicate_after: float = field(default=0.1, validator=validators.ge(0.0))
    """Seconds after the first delivery that a duplicate one starts."""
    runtime_model: str = field(default="lambda", validator=validators.in_(("lambda", "direct")))
    """``lambda``: Lambda's model (environments, Init, Runtime API); ``direct``: one process per
    invocation with the payload on stdin (not what Lambda does: a convenience for tests of other parts)."""
    init_timeout_seconds: float = field(default=10.0, validator=validators.gt(0.0))
    """How long Init may take (until the runtime's first /next) before it counts as failed."""
    environment_idle_seconds: float = field(default=300.0, validator=validators.gt(0.0))
    """How long a warm environment waits for an invocation before it is killed."""
    bootstrap_binaries: dict[str, str] | None = None
    """Architecture (``x86_64``, ``arm64``) -> host path of the bootstrap that runs for
    ``/opt/sockerless/bootstrap``; None: the ones in the ``sockerless_lambda`` package, if installed."""
    ecr_registry: bool = True
    """Start a real registry (Debian's docker-registry, when installed) as the simulator's ECR:
    ``GetAuthorizationToken`` names it, and functions of its images run inside their filesystem."""
    state_dir: str | None = None
    """Where the ECR registry keeps its blobs and unpacked root filesystems are cached; None: a
    temporary directory, removed at stop."""
    child_path: str = field(factory=lambda: os.environ.get("PATH", os.defpath))
    """``PATH`` of the commands: the host's, since they run on the host (a function's own PATH wins)."""
