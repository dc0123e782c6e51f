"""The AWS session and the process's long-lived clients, and the one way to call them.

Three clients, each with its own connection pool and retry policy:

* ``control``: Lambda control plane (create, delete, get, list, tag). botocore's ``standard`` retry
  mode with bounded attempts handles throttling (about 15 control-plane requests/s per account).
* ``invoke``: Lambda ``Invoke`` only. No automatic retries at all: an Invoke that may have reached
  Lambda must never be sent twice (botocore retries read timeouts, which runs the function again).
  ``read_timeout`` exceeds the function timeout, and the pool holds ``max_concurrent_invocations``
  connections, because a synchronous invocation holds its connection for the whole run.
* ``logs``: CloudWatch Logs, ``standard`` retries like the control plane.

botocore's ``standard`` mode backs off a throttled call by its own jittered schedule and ignores the
answer's ``Retry-After``; a ``needs-retry`` handler (:func:`_register_retry_after`) makes its retry of
a throttle (429, or 503) that carries one wait that long instead (up to ``MAX_RETRY_AFTER_SECONDS``),
and on the ``control`` client holds the call's pacer as long, so the calls queued behind wait too.

Lambda's control plane allows about 15 requests/s per account and region, shared by the
function-management calls (``GetFunction`` has its own, about 100/s): a burst of ``docker run`` would
be throttled. Every call through :func:`call` on the ``control`` client first waits its turn at a
:class:`RatePacer` (``control_plane_rate``, one for the whole process, the start-up orphan scan
included), so a burst queues on our side instead of failing on AWS's.

None validates parameters on the client (botocore's ``parameter_validation``, which its docs allow
turning off for performance): every request is built here from values the backend has checked
against Lambda's own limits (``functions.function_spec``), and AWS validates each one again. It cost
about 50 µs of every container's lifecycle, most of it walking CreateFunction's input shape.

Each client sends one fixed User-Agent, ``sockerless/<version> sockerless-lambda/<version>
aiobotocore/... Python/... <OS>/<release> botocore/...``, so CloudTrail's ``userAgent`` names what
made a call. botocore's own header is rebuilt for every request, character by character (about
70 µs each, three times per container); the fixed one leaves out its per-request SDK feature
codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import aiobotocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from attrs import define, frozen
from botocore.exceptions import BotoCoreError, ClientError

import sockerless
import sockerless_lambda
from sockerless.errors import SockerlessError
from sockerless.observability import record_cloud_request_id
from sockerless_lambda.errors import AwsOperation, error_code, map_aws_error, request_id_of

if TYPE_CHECKING:  # type stubs only (the lint extra): never needed at run time
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_logs import CloudWatchLogsClient

__all__ = [
    "INVOKE_READ_MARGIN_SECONDS",
    "MAX_RETRY_AFTER_SECONDS",
    "AwsClients",
    "AwsSettings",
    "RatePacer",
    "aws_error_code",
    "call",
    "failure",
    "retry_after",
    "succeeded",
    "user_agent",
]

log = logging.getLogger("sockerless.lambda.aws")

#: Seconds the Invoke read timeout exceeds the function timeout (cold start, init, response transfer).
INVOKE_READ_MARGIN_SECONDS = 120
_CONTROL_POOL = 32
_CONNECT_TIMEOUT = 10
_CONTROL_READ_TIMEOUT = 60
#: The longest ``Retry-After`` a retry inside botocore waits out; beyond it botocore's own backoff
#: applies (the call fails sooner, and :func:`call` then holds the pacer for the whole wait).
MAX_RETRY_AFTER_SECONDS = 20.0
#: Statuses whose ``Retry-After`` a retry honours: throttles (429) and a service unavailable (503),
#: both retried by botocore's standard mode; any other error keeps botocore's decision alone.
_RETRY_AFTER_STATUSES = frozenset({429, 503})

T = TypeVar("T")


@define(kw_only=True)
class AwsSettings:
    """What the clients need, resolved from the config (and the simulator in simulate mode)."""

    region: str
    endpoint_url: str | None = None
    profile: str | None = None
    static_credentials: tuple[str, str] | None = None
    function_timeout: int = 900
    max_concurrent_invocations: int = 200
    max_attempts: int = 5
    control_plane_rate: float = 10.0
    """Requests/s the ``control`` client sends at most (its calls but ``GetFunction``)."""
    get_function_rate: float = 50.0
    """Requests/s of ``GetFunction``, which has its own quota."""


class RatePacer:
    """Spaces calls to at most ``rate`` per second, letting a burst of ``burst`` through at once.

    A call takes the next free slot and sleeps until it (the generic cell rate algorithm): in any
    window of ``t`` seconds at most ``burst + t * rate`` calls start. Waiters are served in order.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a pacer needs a positive rate and burst, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._next_slot = 0.0  # the theoretical time of the next call, at the steady rate

    def hold(self, seconds: float) -> None:
        """No call starts for ``seconds`` (AWS's ``Retry-After``): the next slot moves past them."""
        now = asyncio.get_running_loop().time()
        self._next_slot = max(self._next_slot, now + seconds + (self.burst - 1) * self._interval)

    async def wait_turn(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(self._next_slot, now)
        self._next_slot = slot + self._interval
        start = slot - (self.burst - 1) * self._interval
        if start > now:
            await asyncio.sleep(start - now)


@frozen
class _Pacing:
    """The pacers of one ``control`` client: ``GetFunction`` apart, every other call shared."""

    control_plane: RatePacer
    get_function: RatePacer

    def for_operation(self, operation: str) -> RatePacer:
        return self.get_function if operation == "GetFunction" else self.control_plane


#: Pacing of each open ``control`` client, found by :func:`call` from the bound method it is given.
_pacing: weakref.WeakKeyDictionary[object, _Pacing] = weakref.WeakKeyDictionary()


@frozen
class AwsClients:
    """One session's three clients, made by :meth:`open` and closed by :meth:`close`."""

    settings: AwsSettings
    control: LambdaClient
    invoke: LambdaClient
    logs: CloudWatchLogsClient
    _stack: contextlib.AsyncExitStack

    @classmethod
    async def open(cls, settings: AwsSettings) -> AwsClients:
        s = settings
        session = AioSession(profile=s.profile) if s.profile else AioSession()
        common: dict[str, Any] = {"region_name": s.region, "endpoint_url": s.endpoint_url}
        agent = user_agent()
        if s.static_credentials is not None:
            common["aws_access_key_id"], common["aws_secret_access_key"] = s.static_credentials
        retrying = AioConfig(
            user_agent=agent,
            parameter_validation=False,
            retries={"mode": "standard", "total_max_attempts": s.max_attempts},
            max_pool_connections=_CONTROL_POOL,
            connect_timeout=_CONNECT_TIMEOUT,
            read_timeout=_CONTROL_READ_TIMEOUT,
        )
        invoking = AioConfig(
            user_agent=agent,
            parameter_validation=False,
            retries={"mode": "standard", "total_max_attempts": 1},
            max_pool_connections=s.max_concurrent_invocations + 8,
            connect_timeout=_CONNECT_TIMEOUT,
            read_timeout=s.function_timeout + INVOKE_READ_MARGIN_SECONDS,
        )
        stack = contextlib.AsyncExitStack()
        try:
            control = await stack.enter_async_context(
                session.create_client("lambda", config=retrying, **common)
            )
            invoke = await stack.enter_async_context(
                session.create_client("lambda", config=invoking, **common)
            )
            logs = await stack.enter_async_context(session.create_client("logs", config=retrying, **common))
        except BaseException:
            await stack.aclose()
            raise
        pacing = _Pacing(
            RatePacer(s.control_plane_rate, burst=_burst(s.control_plane_rate)),
            RatePacer(s.get_function_rate, burst=_burst(s.get_function_rate)),
        )
        _pacing[control] = pacing
        _register_retry_after(control, s.max_attempts, pacing)
        _register_retry_after(logs, s.max_attempts, None)
        return cls(settings, control, invoke, logs, stack)

    async def close(self) -> None:
        await self._stack.aclose()


def retry_after(exc: BaseException) -> float | None:
    """Seconds of a throttle answer's ``Retry-After`` header, when it has one."""
    if not isinstance(exc, ClientError):
        return None
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return _seconds(headers.get("retry-after"))


def _register_retry_after(client: Any, max_attempts: int, pacing: _Pacing | None) -> None:
    """Make botocore's retries of ``client`` honour a throttle's ``Retry-After``.

    botocore emits ``needs-retry`` after every failed attempt and sleeps the first non-None answer of
    its handlers; this one runs before the retry handler of botocore's ``standard`` mode (which still
    runs, and still counts the attempt against its retry quota) and answers only for an attempt that
    is not the last, whose status is a throttle and whose answer says how long to wait.
    """

    def needs_retry(response: Any = None, attempts: int = 0, operation: Any = None, **_: Any) -> float | None:
        if response is None or attempts >= max_attempts:
            return None  # no answer (a connection error), or botocore makes no more attempts
        http_response = response[0]
        if http_response.status_code not in _RETRY_AFTER_STATUSES:
            return None
        seconds = _seconds(http_response.headers.get("retry-after"))
        if seconds is None or seconds > MAX_RETRY_AFTER_SECONDS:
            return None
        if pacing is not None and operation is not None:
            pacing.for_operation(operation.name).hold(seconds)  # the queued calls wait as long
        return seconds

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(
        f"needs-retry.{service}", needs_retry, unique_id=f"retry-after-{service}"
    )


def _seconds(value: Any) -> float | None:
    """A ``Retry-After`` in seconds (AWS sends whole seconds; an HTTP date is not used by AWS)."""
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _burst(rate: float) -> int:
    """Half a second's worth at once: bursts pass without delay, and a whole second stays under
    ``1.5 * rate``, inside AWS's bucket when the rate is set at two thirds of the quota."""
    return max(1, int(rate / 2))


def user_agent() -> str:
    """The User-Agent of every AWS request: the product first, then the libraries and the platform
    (aiobotocore's session appends ``botocore/<version>``)."""
    return " ".join(
        [
            f"sockerless/{sockerless.__version__}",
            f"sockerless-lambda/{sockerless_lambda.__version__}",
            f"aiobotocore/{aiobotocore.__version__}",
            f"Python/{platform.python_version()}",
            f"{platform.system()}/{platform.release()}",
        ]
    )


async def call(operation: AwsOperation, method: Callable[..., Awaitable[T]], /, **params: Any) -> T:
    """Call AWS; record the request ID; turn any failure into the mapped sockerless error.

    The original botocore exception stays the ``__cause__`` (see :func:`aws_error_code`).
    Parameters are never logged: they may hold environment values. A call on a paced client
    (``control``) waits its turn first.
    """
    client = getattr(method, "__self__", None)
    pacing = _pacing.get(client) if client is not None else None
    if pacing is not None:
        await pacing.for_operation(operation.operation).wait_turn()
    try:
        response = await method(**params)
    except (ClientError, BotoCoreError) as exc:
        delay = retry_after(exc)
        if pacing is not None and delay:
            # Throttled past botocore's retries: AWS said when to come back, so every call waits.
            pacing.for_operation(operation.operation).hold(delay)
        raise failure(operation, exc) from exc
    succeeded(operation, response)
    return response


def succeeded(operation: AwsOperation, response: Any) -> str:
    """Record and log the request ID of a successful call; returns it."""
    request_id = request_id_of(response)
    record_cloud_request_id(request_id)
    log.debug(
        "aws call",
        extra={
            "fields": {
                "operation": operation.operation,
                "target": operation.target,
                "aws_request_id": request_id,
            }
        },
    )
    return request_id


def failure(operation: AwsOperation, exc: BaseException) -> SockerlessError:
    """Record and log a failed call's request ID; returns the mapped error to raise ``from exc``."""
    request_id = request_id_of(exc)
    record_cloud_request_id(request_id)
    mapped = map_aws_error(exc, operation)
    log.warning(
        "aws call failed",
        extra={
            "fields": {
                "operation": operation.operation,
                "target": operation.target,
                "aws_request_id": request_id,
                "error": mapped.message,
            }
        },
    )
    return mapped


def aws_error_code(error: SockerlessError) -> str:
    """The AWS error code behind a mapped error ('' when it did not come from an AWS error response)."""
    cause = error.__cause__
    return error_code(cause) if cause is not None else ""
