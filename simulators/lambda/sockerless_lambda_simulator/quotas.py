"""Request-rate quotas: token buckets per operation group, answering as Lambda does when one runs dry.

Lambda's control plane allows about 15 requests/s per account and region, shared by the function
management calls; ``GetFunction`` has its own bucket of about 100/s (AWS Lambda quotas, "API
requests"). A call over its group's rate gets ``TooManyRequestsException`` (429) with
``Reason: CallerRateLimitExceeded`` and a ``Retry-After`` header in whole seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from attrs import frozen

from .errors import AwsError
from .operations import AwsCall

__all__ = [
    "CONTROL_PLANE_OPERATIONS",
    "DEFAULT_CONCURRENCY_LIMIT",
    "DEFAULT_CONTROL_PLANE_RATE",
    "DEFAULT_GET_FUNCTION_RATE",
    "RequestQuotas",
    "TokenBucket",
]

#: Lambda's default control-plane rate, requests per second per account and region.
DEFAULT_CONTROL_PLANE_RATE = 15.0
#: Lambda's default GetFunction rate, requests per second per account and region.
DEFAULT_GET_FUNCTION_RATE = 100.0

#: Lambda's default concurrency per account and region (new accounts may get as little as 10).
DEFAULT_CONCURRENCY_LIMIT = 1000

#: Lambda operations that share the control-plane bucket.
CONTROL_PLANE_OPERATIONS = frozenset(
    {
        "CreateFunction",
        "DeleteFunction",
        "GetFunctionConfiguration",
        "ListFunctions",
        "ListTags",
        "TagResource",
        "UntagResource",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "PutFunctionEventInvokeConfig",
    }
)


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst`` (one second's worth by default)."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a token bucket needs a positive rate, got {rate}")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()

    def take(self) -> float:
        """Take a token: 0.0 when there was one, else the seconds until the next one (none taken)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@frozen
class _Group:
    name: str
    bucket: TokenBucket


class RequestQuotas:
    """The buckets of one simulator (its account, all regions together), keyed by ``service:Operation``."""

    def __init__(self, rates: Mapping[str, float | None]) -> None:
        """``rates``: group name → requests/s (``None``: unlimited). Groups: ``control_plane``,
        ``get_function``."""
        self._by_operation: dict[str, _Group] = {}
        control = rates.get("control_plane")
        if control is not None:
            group = _Group("control_plane", TokenBucket(control))
            for name in CONTROL_PLANE_OPERATIONS:
                self._by_operation[f"lambda:{name}"] = group
        get_function = rates.get("get_function")
        if get_function is not None:
            self._by_operation["lambda:GetFunction"] = _Group("get_function", TokenBucket(get_function))

    def check(self, call: AwsCall) -> AwsError | None:
        """The throttle answer for ``call`` when its group is over its rate, else ``None``."""
        group = self._by_operation.get(call.key)
        if group is None:
            return None
        wait = group.bucket.take()
        if wait == 0.0:
            return None
        return AwsError(
            "TooManyRequestsException",
            429,
            "Rate exceeded",
            extra={"Reason": "CallerRateLimitExceeded"},
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
