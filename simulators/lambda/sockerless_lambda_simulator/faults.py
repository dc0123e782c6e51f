"""Fault injection: throttles, 5xx errors, latency, dropped connections and lost answers per operation."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from attrs import define, field, fields, frozen, validators

from .errors import AwsError
from .operations import AwsCall, WireProtocol

__all__ = ["FaultDecision", "FaultInjector", "FaultKind", "FaultRule"]


class FaultKind(StrEnum):
    THROTTLE = "throttle"
    ERROR = "error"
    LATENCY = "latency"
    DROP = "drop"
    #: The call is carried out, then the connection is closed instead of answering: a lost response.
    DROP_ANSWER = "drop_answer"


def _check_operation(_: object, __: object, value: str) -> None:
    service, colon, name = value.rpartition(":")
    if not name or (colon and not service):
        raise ValueError(f"operation {value!r}: use 'Invoke', 'lambda:Invoke', 'lambda:*' or '*'")


@frozen
class FaultRule:
    """What to break: ``kind`` on calls matching ``operation``.

    ``operation`` is ``"*"``, an operation name (``"Invoke"``), or ``"service:Name"`` /
    ``"service:*"`` (``"logs:FilterLogEvents"``). A rule fires on each matching call with
    ``probability`` until it has fired ``count`` times (``None``: forever).
    """

    kind: FaultKind = field(converter=FaultKind)
    operation: str = field(default="*", validator=_check_operation)
    count: int | None = field(default=None, validator=validators.optional(validators.ge(1)))
    probability: float = field(default=1.0, validator=[validators.ge(0.0), validators.le(1.0)])
    latency_ms: int = field(default=0, validator=validators.ge(0))
    status: int | None = field(default=None, validator=validators.optional(validators.in_(range(400, 600))))
    code: str | None = None
    message: str | None = None
    reason: str = "CallerRateLimitExceeded"
    retry_after: int | None = field(default=None, validator=validators.optional(validators.ge(0)))
    """Seconds of the throttle answer's ``Retry-After`` header (none when ``None``)."""

    @classmethod
    def from_json(cls, data: object) -> FaultRule:
        """Build a rule from its JSON form; raise ``ValueError`` with a readable message."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a fault rule must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - set(_RULE_FIELDS) - {"id", "fired", "remaining"}
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError(f"a fault rule needs 'kind' (one of {', '.join(FaultKind)})")
        fields = {key: value for key, value in data.items() if key not in ("id", "fired", "remaining")}
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid fault rule {dict(data)!r}: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RULE_FIELDS}

    def matches(self, call: AwsCall) -> bool:
        if self.operation == "*":
            return True
        service, _, name = self.operation.rpartition(":")
        if service and service != call.service:
            return False
        return name in ("*", call.name)

    def as_error(self, call: AwsCall) -> AwsError:
        """The AWS error this rule answers with, in the called service's dialect."""
        if self.kind is FaultKind.THROTTLE:
            code, status = _throttle_defaults(call)
            extra = {"Reason": self.reason} if call.protocol is WireProtocol.REST_JSON else {}
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return AwsError(
                self.code or code,
                self.status or status,
                self.message or "Rate exceeded",
                extra=extra,
                headers=headers,
            )
        code = "ServiceException" if call.protocol is WireProtocol.REST_JSON else "InternalFailure"
        message = self.message or "An internal error occurred (injected by the simulator)."
        return AwsError(self.code or code, self.status or 500, message)


_RULE_FIELDS: tuple[str, ...] = tuple(attribute.name for attribute in fields(FaultRule))


def _throttle_defaults(call: AwsCall) -> tuple[str, int]:
    if call.protocol is WireProtocol.REST_JSON:
        return "TooManyRequestsException", 429  # Lambda
    if call.protocol is WireProtocol.JSON:
        return "ThrottlingException", 400  # CloudWatch Logs, ECR
    if call.protocol is WireProtocol.QUERY:
        return "Throttling", 400  # IAM, STS
    return "SlowDown", 503  # S3


@frozen
class FaultDecision:
    """What the proxy must do for one call: wait, then answer with ``error``, drop, or go on (and with
    ``drop_answer``, carry the call out but close the connection instead of answering)."""

    delay_seconds: float = 0.0
    error: AwsError | None = None
    drop: bool = False
    drop_answer: bool = False

    @property
    def intercepts(self) -> bool:
        return self.drop or self.error is not None


@define
class _ActiveRule:
    id: str
    rule: FaultRule
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        remaining = None if self.rule.count is None else self.rule.count - self.fired
        return {"id": self.id, **self.rule.to_json(), "fired": self.fired, "remaining": remaining}


class FaultInjector:
    """The active rules, applied in the order they were added; deterministic when seeded."""

    def __init__(self, seed: int | None = None, rules: Iterable[FaultRule] = ()) -> None:
        self._random = random.Random(seed)  # noqa: S311 - fault dice, not cryptography
        self._ids = itertools.count(1)
        self._rules: list[_ActiveRule] = []
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> str:
        active = _ActiveRule(id=f"f{next(self._ids)}", rule=rule)
        self._rules.append(active)
        return active.id

    def remove(self, rule_id: str) -> bool:
        before = len(self._rules)
        self._rules = [active for active in self._rules if active.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [active.to_json() for active in self._rules]

    def decide(self, call: AwsCall) -> FaultDecision:
        """Roll the dice for every matching rule; latencies add up, the first failure wins."""
        if not self._rules:
            return FaultDecision()
        delay_ms = 0
        error: AwsError | None = None
        drop = drop_answer = False
        for active in list(self._rules):
            rule = active.rule
            if not rule.matches(call):
                continue
            if rule.kind is not FaultKind.LATENCY and (error is not None or drop or drop_answer):
                continue
            # Draw only for partial rules, so a seed replays the same sequence of decisions.
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            active.fired += 1
            if rule.count is not None and active.fired >= rule.count:
                self._rules.remove(active)
            if rule.kind is FaultKind.LATENCY:
                delay_ms += rule.latency_ms
            elif rule.kind is FaultKind.DROP:
                drop = True
            elif rule.kind is FaultKind.DROP_ANSWER:
                drop_answer = True
            else:
                error = rule.as_error(call)
        return FaultDecision(delay_seconds=delay_ms / 1000.0, error=error, drop=drop, drop_answer=drop_answer)
