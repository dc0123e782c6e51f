"""Running one invocation: readiness, the concurrency gate, the Invoke call and what its outcome means.

Outcome rules (Lambda has no exit codes; these recover Docker's):

* no ``FunctionError``: exit 0;
* ``Runtime exited with error: exit status N``: exit N;
* ``Task timed out after ...`` / ``Sandbox.Timedout``: exit 137, ``State.Error`` says it timed out;
* ``Runtime exited with error: signal: killed`` (out of memory, or killed): exit 137; other signals 128+N;
* ``Runtime.InvalidEntrypoint`` (the command cannot be run): exit 126 when it is not executable
  (``permission denied``), else 127 (not found), like Docker;
* ``Runtime exited without providing a reason``: the process exited 0 without speaking the Runtime API;
* any other function error: exit 1, ``State.Error`` names it (``function error (Handled):
  ValueError: bad input``).

``FunctionError`` ``Handled`` (the function reported its error through the Runtime API) and
``Unhandled`` (the runtime failed or was ended) are read alike: both mean the container's command
failed, and Docker has one way to say that, a non-zero exit with its reason. The rules above decide
the exit from the message, whichever of the two Lambda said.

Each of these is the container's own exit: the wait answer carries only the status, and the reason
(a timeout, a command that cannot run) is in ``State.Error``. Only when the command never ran (the
function could not become active, Lambda refused or could not be reached) or how it ended is lost
is the outcome a ``daemon_error``: then the wait answer carries the reason as ``Error``, as Docker's
does when waiting itself failed (see the backend's README).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from attrs import frozen
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from sockerless.errors import SockerlessError
from sockerless_lambda.aws import AwsClients, aws_error_code, call, failure, retry_after, succeeded
from sockerless_lambda.errors import (
    AwsOperation,
    conflict_state,
    error_code,
    is_pending_conflict,
    state_reason_status,
)

__all__ = [
    "EXIT_FAILURE",
    "EXIT_KILLED",
    "EXIT_UNKNOWN",
    "FunctionNotReady",
    "InvocationOutcome",
    "InvokeSent",
    "Invoker",
    "OutcomeUnknown",
    "function_cannot_run",
    "may_have_run",
    "outcome_from_error",
    "outcome_from_response",
]

log = logging.getLogger("sockerless.lambda.invocations")

EXIT_FAILURE = 1
EXIT_KILLED = 137
#: Docker's codes for a command that is not executable, and one that is not found.
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
#: The run may have happened, but nothing tells how it ended (see reconcile).
EXIT_UNKNOWN = 255

_EXIT_STATUS = re.compile(r"exit status (\d+)")
_SIGNAL = re.compile(r"signal: ([a-z ]+)", re.IGNORECASE)
# Go's signal names as Lambda's runtime reports them (``signal: killed``), to Docker's 128+N.
_SIGNALS = {
    "hangup": 1,
    "interrupt": 2,
    "aborted": 6,
    "killed": 9,
    "segmentation fault": 11,
    "terminated": 15,
}
_TIMED_OUT = re.compile(r"Task timed out after ([\d.]+) seconds")
#: Readiness polls: soon after the create, then every second at most, as botocore's own
#: ``function_active_v2`` waiter does (GetFunction's quota of about 100/s allows it for many at once).
_POLL_FIRST, _POLL_MAX = 0.25, 1.0
#: Error codes of a throttled call: the answer of a later call may differ, so poll again.
_THROTTLED = frozenset({"TooManyRequestsException", "ThrottlingException"})
_RETRY_BASE, _RETRY_CAP = 0.2, 10.0
#: The operations that run a function: an error of any other did not run it.
_INVOKE_OPERATIONS = frozenset({"Invoke", "InvokeWithResponseStream"})
#: How long a function may stay Pending (container image optimisation can take minutes).
ACTIVATION_DEADLINE_SECONDS = 600.0


@frozen
class InvocationOutcome:
    exit_code: int
    #: Docker's State.Error: why the run ended as it did, or why it never ran.
    error: str = ""
    request_id: str = ""
    log_tail: str = ""
    #: The command never ran, or how its run ended is unknown: a failure of the backend or the cloud,
    #: which the wait answer reports as ``Error`` (see :class:`sockerless.waiters.ExitStatus`).
    daemon_error: bool = False
    #: The command provably did not run (no Invoke reached Lambda): there is no output to wait for.
    never_ran: bool = False
    #: When the command started and ended, where the run reports it (the bootstrap's exit record).
    started: dt.datetime | None = None
    finished: dt.datetime | None = None


class FunctionNotReady(SockerlessError):
    """The function cannot run: ``Failed``, not reactivated, in a state that refuses invokes, or
    never Active in time. ``status`` follows its ``StateReasonCode`` when it has one."""

    def __init__(self, message: str, *, state: str = "", reason_code: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.reason_code = reason_code
        if reason_code:
            self.status = state_reason_status(reason_code)


def function_cannot_run(function_name: str, configuration: Mapping[str, Any], why: str) -> FunctionNotReady:
    """The error for a function whose state (with its reason code and text) keeps it from running."""
    state = str(configuration.get("State", ""))
    code = str(configuration.get("StateReasonCode") or "")
    reason = str(configuration.get("StateReason") or "")
    detail = ": ".join(part for part in (code, reason) if part) or "no reason given"
    return FunctionNotReady(
        f"lambda: function {function_name} is {state} ({why}): {detail}", state=state, reason_code=code
    )


#: States a function passes through on its way to Active: wait.
_WAIT_STATES = frozenset({"Pending", "Deactivating"})


class OutcomeUnknown(Exception):
    """The Invoke may have reached Lambda but its answer was lost (read timeout, dropped connection)."""

    def __init__(self, detail: str, request_id: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.request_id = request_id


@frozen
class InvokeSent:
    """An ``Event`` invocation Lambda accepted: the outcome will be in CloudWatch."""

    request_id: str


def outcome_from_error(error_type: str, message: str) -> tuple[int, str]:
    """Exit code and State.Error for a function error (from an Invoke payload or a log line)."""
    timed_out = _TIMED_OUT.search(message)
    if timed_out or error_type == "Sandbox.Timedout":
        seconds = timed_out.group(1) if timed_out else "?"
        return EXIT_KILLED, f"timed out: Lambda ended the run after {seconds} seconds (the function timeout)"
    status = _EXIT_STATUS.search(message)
    if status:
        return int(status.group(1)), ""
    signalled = _SIGNAL.search(message)
    if signalled:
        name = signalled.group(1).strip().lower()
        number = _SIGNALS.get(name)
        if number == 9:
            return EXIT_KILLED, "killed: the process was killed (out of memory?)"
        return (128 + number if number else EXIT_FAILURE), ""
    if error_type == "Runtime.InvalidEntrypoint":
        code = EXIT_NOT_EXECUTABLE if "permission denied" in message.lower() else EXIT_NOT_FOUND
        return code, f"cannot run the command: {message}"
    if "exited without providing a reason" in message:
        return 0, ""  # the process exited 0 without speaking the Runtime API
    return EXIT_FAILURE, ""


def outcome_from_response(response: dict[str, Any], payload: bytes) -> InvocationOutcome:
    """The outcome of a synchronous (``RequestResponse``) Invoke."""
    request_id = str(response.get("ResponseMetadata", {}).get("RequestId", ""))
    tail = ""
    if response.get("LogResult"):
        tail = base64.b64decode(response["LogResult"]).decode("utf-8", "replace")
    if not response.get("FunctionError"):
        return InvocationOutcome(0, request_id=request_id, log_tail=tail)
    error_type, message = "", ""
    try:
        body = json.loads(payload or b"{}")
        if isinstance(body, dict):
            error_type, message = str(body.get("errorType", "")), str(body.get("errorMessage", ""))
    except ValueError:
        message = payload.decode("utf-8", "replace")
    exit_code, error = outcome_from_error(error_type, message)
    if exit_code == EXIT_FAILURE and not error and not _EXIT_STATUS.search(message):
        # Not the runtime's own report of an exit: the function's error (a handler's exception).
        named = ": ".join(part for part in (error_type, message) if part) or "no details"
        error = f"function error ({response['FunctionError']}): {named}"
    return InvocationOutcome(exit_code, error, request_id=request_id, log_tail=tail)


class Invoker:
    """Invokes functions, at most ``limit`` at once (later ones queue), retrying only what is safe."""

    def __init__(
        self,
        clients: AwsClients,
        *,
        limit: int,
        max_attempts: int,
        invocation_type: str,
        activation_timeout: float = ACTIVATION_DEADLINE_SECONDS,
        capacity_wait: float = 300.0,
    ) -> None:
        self._clients = clients
        self._capacity_wait = capacity_wait
        self._activation_timeout = activation_timeout
        self.gate = asyncio.Semaphore(limit)
        self._max_attempts = max_attempts
        self.invocation_type = invocation_type

    async def wait_until_active(self, function_name: str, deadline: float | None = None) -> str:
        """Poll GetFunction until the function is Active; return its state: ``Active``, or
        ``Inactive`` (idle: only an Invoke wakes it, which the caller sends).

        GetFunction has its own quota (about 100/s), apart from the control plane's 15/s that
        creates and deletes need. A throttled poll is only a poll that must come again: the wait goes
        on until the deadline instead of failing the container. States:

        * ``Pending``, ``Deactivating`` (then Inactive): wait;
        * ``Failed``, ``Inactive`` with a reason but ``Idle`` (its reactivation failed),
          ``ActiveNonInvocable``, ``Deactivated`` and states unknown here: :class:`FunctionNotReady`
          at once, with the state's reason code and text;
        * ``Deleting``: wait until it is gone, then raise the ``ResourceNotFoundException`` (the
          run creates the function again, as for a function that vanished).
        """
        operation = AwsOperation("lambda", "GetFunction", "get function", function_name)
        delay = _POLL_FIRST
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self._activation_timeout
        not_found_left = self._max_attempts
        deleting = False
        while True:
            throttled: SockerlessError | None = None
            try:
                answer = await call(operation, self._clients.control.get_function, FunctionName=function_name)
            except SockerlessError as exc:
                code = aws_error_code(exc)
                if code in _THROTTLED:
                    throttled, state = exc, "unknown (throttled)"
                elif code == "ResourceNotFoundException" and not deleting and not_found_left > 1:
                    # Right after CreateFunction the function can be briefly invisible (eventual consistency).
                    not_found_left -= 1
                    state = "Pending"
                else:
                    raise
            else:
                configuration = answer.get("Configuration", {})
                state = str(configuration.get("State", "Active"))
                if state == "Active":
                    return state
                if state == "Inactive":
                    if configuration.get("StateReasonCode") in (None, "", "Idle"):
                        return state
                    raise function_cannot_run(function_name, configuration, "Lambda could not reactivate it")
                if state == "Failed":
                    raise function_cannot_run(function_name, configuration, "it failed to become active")
                if state == "Deleting":
                    deleting = True
                elif state not in _WAIT_STATES:
                    raise function_cannot_run(function_name, configuration, "it cannot be invoked")
            if loop.time() + delay > deadline:
                if throttled is not None:
                    raise throttled  # the AWS error, as a failed call says it
                raise FunctionNotReady(
                    f"lambda: function {function_name} still {state} after {self._activation_timeout:.0f} s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def check_not_failed(self, function_name: str) -> str:
        """One GetFunction: the function's state, or :class:`FunctionNotReady` if it is ``Failed``."""
        operation = AwsOperation("lambda", "GetFunction", "get function", function_name)
        answer = await call(operation, self._clients.control.get_function, FunctionName=function_name)
        configuration = answer.get("Configuration", {})
        if configuration.get("State") == "Failed":
            raise function_cannot_run(function_name, configuration, "it failed to become active")
        return str(configuration.get("State", "Active"))

    async def invoke(
        self, function_name: str, *, before_send: Callable[[], Awaitable[None]]
    ) -> InvocationOutcome | InvokeSent:
        """Invoke once. Retries happen only on errors that prove the function did not run.

        ``before_send`` runs (and persists that an Invoke may be under way) before the request
        can reach Lambda, so a crash mid-run is recovered from CloudWatch rather than re-run.
        """
        operation = AwsOperation("lambda", "Invoke", "invoke function", function_name)
        params: dict[str, Any] = {"FunctionName": function_name, "InvocationType": self.invocation_type}
        if self.invocation_type == "RequestResponse":
            params["LogType"] = "Tail"
        await before_send()
        response = await self._send(operation, self._clients.invoke.invoke, params)
        request_id = succeeded(operation, response)
        if self.invocation_type == "Event":
            return InvokeSent(request_id)
        try:
            payload = await response["Payload"].read()
        except Exception as exc:
            raise OutcomeUnknown(f"{operation}: reading the response: {exc}", request_id) from exc
        return outcome_from_response(dict(response), payload)

    async def invoke_stream(
        self, function_name: str, payload: bytes, *, before_send: Callable[[], Awaitable[None]]
    ) -> tuple[str, Any]:
        """``InvokeWithResponseStream`` once (a bootstrap run): its request ID and its event stream,
        which the caller reads. Retried as :meth:`invoke` is, only before the stream began: an error
        that proves the function did not run. Once the answer's headers came, nothing is resent."""
        operation = AwsOperation("lambda", "InvokeWithResponseStream", "invoke function", function_name)
        params: dict[str, Any] = {"FunctionName": function_name, "Payload": payload}
        await before_send()
        response = await self._send(operation, self._clients.invoke.invoke_with_response_stream, params)
        return succeeded(operation, response), response["EventStream"]

    async def invoke_buffered(
        self, function_name: str, payload: bytes, *, before_send: Callable[[], Awaitable[None]]
    ) -> tuple[str, list[dict[str, Any]]]:
        """``Invoke`` once (a bootstrap run where response streaming is off): its request ID and its
        answer as the events :meth:`invoke_stream` gives (one ``PayloadChunk``, or ``InvokeComplete``
        with the function's error), so a run reads both alike. Retried as :meth:`invoke` is."""
        operation = AwsOperation("lambda", "Invoke", "invoke function", function_name)
        params: dict[str, Any] = {"FunctionName": function_name, "Payload": payload}
        await before_send()
        response = await self._send(operation, self._clients.invoke.invoke, params)
        request_id = succeeded(operation, response)
        try:
            body = await response["Payload"].read()
        except Exception as exc:
            raise OutcomeUnknown(f"{operation}: reading the response: {exc}", request_id) from exc
        if not response.get("FunctionError"):
            return request_id, [{"PayloadChunk": {"Payload": body}}]
        error_type, message = "", body.decode("utf-8", "replace")
        with contextlib.suppress(ValueError):
            error = json.loads(body or b"{}")
            if isinstance(error, dict):
                error_type, message = str(error.get("errorType", "")), str(error.get("errorMessage", ""))
        return request_id, [{"InvokeComplete": {"ErrorCode": error_type, "ErrorDetails": message}}]

    async def _send(
        self, operation: AwsOperation, send: Callable[..., Awaitable[Any]], params: dict[str, Any]
    ) -> Any:
        """One invocation request, sent again only after an error that proves it did not run."""
        function_name = str(params["FunctionName"])
        loop = asyncio.get_running_loop()
        capacity_deadline = loop.time() + self._capacity_wait
        activation_deadline: float | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                return await send(**params)
            except (ClientError, EndpointConnectionError, ConnectTimeoutError) as exc:
                if conflict_state(exc) is not None:
                    # Not Active: Pending, Inactive (this refused Invoke woke it: Pending, then Active),
                    # Deactivating...; nothing ran. Wait as for a new function, then invoke again.
                    if activation_deadline is None:
                        activation_deadline = loop.time() + self._activation_timeout
                    await self.wait_until_active(function_name, activation_deadline)
                    # Active (or Inactive: not woken yet, another Invoke wakes it); AWS's answers are
                    # eventually consistent, so the next Invoke may meet the old state: not at once.
                    await asyncio.sleep(_backoff(min(attempt, 6)))
                    if loop.time() < activation_deadline:
                        continue
                    raise FunctionNotReady(
                        f"lambda: function {function_name} still not Active after "
                        f"{self._activation_timeout:.0f} s (last: {conflict_state(exc)})"
                    ) from exc
                if error_code(exc) == "TooManyRequestsException":
                    # No concurrency (or rate) left: Lambda did not run it. Wait for capacity, as AWS
                    # says when (Retry-After), else with backoff, until capacity_wait is spent.
                    delay = retry_after(exc) or _backoff(min(attempt, 6))
                    if loop.time() + delay <= capacity_deadline:
                        await asyncio.sleep(delay)
                        continue
                elif attempt < self._max_attempts and _did_not_run(exc):
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise failure(operation, exc) from exc
            except Exception as exc:  # read timeout, dropped connection: it may have run
                raise OutcomeUnknown(f"{operation}: {type(exc).__name__}: {exc}") from exc


def may_have_run(error: BaseException) -> bool:
    """Whether the function may have run despite ``error``: an Invoke that failed in a way that does
    not prove it did not run (a 5xx, an unclassified failure), as opposed to one whose cause proves
    it did not (those :meth:`Invoker.invoke` retries) or a failed call before any Invoke (waiting for
    the function to be active)."""
    cause = error.__cause__
    if cause is None:
        return True
    if isinstance(cause, ClientError) and cause.operation_name not in _INVOKE_OPERATIONS:
        return False
    return not _did_not_run(cause)


def _did_not_run(exc: BaseException) -> bool:
    """Errors that prove Lambda did not start the function: throttling, not-ready, no connection."""
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return True
    code = error_code(exc)
    return code in ("TooManyRequestsException", "ResourceNotFoundException") or is_pending_conflict(exc)


def _backoff(attempt: int) -> float:
    """Full jitter: a random delay up to an exponentially growing cap."""
    return random.uniform(0, min(_RETRY_CAP, _RETRY_BASE * 2**attempt))  # noqa: S311 - jitter, not security
