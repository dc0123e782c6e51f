"""The one AWS endpoint: identify each call, count it, maybe break it, then own it or pass it to moto."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from attrs import define, field

from .delivery import LogDelivery
from .errors import AwsError, aws_error_response
from .eventstream import CONTENT_TYPE as EVENT_STREAM_CONTENT_TYPE
from .eventstream import invoke_complete, payload_chunks
from .faults import FaultInjector
from .functions import FunctionConfig, parse_function_ref
from .images import EcrImages
from .invocations import InvocationRunner, InvocationType
from .operations import AwsCall, AwsScope, identify_operation, parse_scope
from .proxy import MotoProxy, UpstreamAnswer
from .quotas import RequestQuotas
from .state import FunctionStateOverlay
from .stats import Stats
from .streaming import InvocationStream, StreamOutcome
from .validation import check_input, check_member

__all__ = ["AwsFrontend"]

log = logging.getLogger(__name__)

_Handler = Callable[[web.Request, AwsCall, AwsScope, bytes | None], Awaitable[web.StreamResponse]]

# Invoke payload quotas: 6 MB synchronous, 1 MB asynchronous (AWS Lambda API reference, Invoke).
_SYNC_PAYLOAD_MAX = 6 * 1024 * 1024
_EVENT_PAYLOAD_MAX = 1024 * 1024
# Lambda returns at most 50 functions per ListFunctions page, whatever MaxItems says.
_LIST_PAGE_MAX = 50
# Lambda operations whose JSON bodies are checked against the service model's constraints.
_CHECKED_INPUTS = frozenset(
    {"CreateFunction", "UpdateFunctionConfiguration", "TagResource", "PutFunctionEventInvokeConfig"}
)
# Set by a drop_answer fault: a handler that streams its answer cuts it itself.
_DROP_ANSWER = web.RequestKey("sockerless_drop_answer", bool)


@define(kw_only=True)
class AwsFrontend:
    """Routes AWS calls: Invoke runs here, state-bearing Lambda calls are rewritten, the rest is proxied."""

    _region: str
    _proxy: MotoProxy
    _invocations: InvocationRunner
    _overlay: FunctionStateOverlay
    _faults: FaultInjector
    _quotas: RequestQuotas
    _concurrency_limit: int | None
    _stats: Stats
    _deleting_seconds: float = 0.0
    _delivery: LogDelivery = field(factory=LogDelivery)
    _images: EcrImages | None = None
    """The simulator's ECR registry, when it runs: GetAuthorizationToken names it, CreateFunction
    checks its images."""
    _lambda_handlers: dict[str, _Handler] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._lambda_handlers = {
            "Invoke": self._invoke,
            "InvokeWithResponseStream": self._invoke_with_response_stream,
            "CreateFunction": self._create_function,
            "UpdateFunctionConfiguration": self._update_function_configuration,
            "DeleteFunction": self._delete_function,
            "GetFunction": self._rewrite_configurations,
            "ListFunctions": self._list_functions,
            "ListVersionsByFunction": self._rewrite_configurations,
            "GetFunctionConfiguration": self._rewrite_configurations,
            "UpdateFunctionCode": self._rewrite_configurations,
            "PublishVersion": self._rewrite_configurations,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for every request outside the control API."""
        query = dict(request.query)
        scope = parse_scope(request.headers, query, self._region)
        form_body: bytes | None = None
        form: dict[str, str] | None = None
        if (
            request.method == "POST"
            and "X-Amz-Target" not in request.headers
            and request.content_type == "application/x-www-form-urlencoded"
        ):
            # Query-protocol services (IAM, STS) name the operation in the body; these bodies are small.
            form_body = await request.read()
            form = dict(parse_qsl(form_body.decode(errors="replace"), keep_blank_values=True))
        call = identify_operation(scope, request.method, request.raw_path, query, request.headers, form)
        self._stats.count_call(call.key)

        decision = self._faults.decide(call)
        if decision.delay_seconds:
            await asyncio.sleep(decision.delay_seconds)
        if decision.intercepts:
            self._stats.count_fault(call.key)
            if decision.drop:
                return _drop_connection(request)
            assert decision.error is not None
            return aws_error_response(call.protocol, decision.error)
        throttled = self._quotas.check(call)
        if throttled is not None:
            self._stats.count_throttle(call.key)
            return aws_error_response(call.protocol, throttled)

        request[_DROP_ANSWER] = decision.drop_answer
        try:
            response = await self._carry_out(request, call, scope, form_body)
        except AwsError as error:
            response = aws_error_response(call.protocol, error)
        except Exception as exc:
            # A bug of ours still answers in AWS's shape, so the client sees a ServiceException.
            log.exception("simulator failed on %s", call.key)
            failure = AwsError("ServiceException", 500, f"the simulator failed on {call.key}: {exc!r}")
            response = aws_error_response(call.protocol, failure)
        if decision.drop_answer:
            self._stats.count_fault(call.key)
            return _drop_connection(request)
        return response

    async def _carry_out(
        self, request: web.Request, call: AwsCall, scope: AwsScope, form_body: bytes | None
    ) -> web.StreamResponse:
        if call.service == "lambda" and call.name in _CHECKED_INPUTS:
            # What AWS refuses and moto accepts: refused here before moto sees it. The body, read now,
            # is what goes on to moto (aiohttp keeps it for a handler's own read()).
            form_body = await request.read()
            check_input(call.service, call.name, _json_object(form_body))
        handler = self._lambda_handlers.get(call.name) if call.service == "lambda" else None
        if handler is not None:
            return await handler(request, call, scope, form_body)
        if call.service == "logs" and call.name == "FilterLogEvents":
            return await self._filter_log_events(request, call)
        if call.service == "logs" and call.name == "GetLogEvents":
            return await self._get_log_events(request, call)
        if call.service == "ecr" and call.name == "GetAuthorizationToken" and self._images is not None:
            document = self._images.authorization()
            return web.json_response(document, content_type="application/x-amz-json-1.1")
        response = await self._proxy.forward(call.service, request, form_body)
        self._after_lambda_change(request, call, scope, response.status)
        return response

    # -- Invoke -------------------------------------------------------------------------------

    async def _invoke(
        self, request: web.Request, call: AwsCall, scope: AwsScope, _: bytes | None
    ) -> web.StreamResponse:
        invocation_type, config, payload = await self._accept_invocation(request, call, scope)
        if invocation_type is InvocationType.DRY_RUN:
            return web.Response(status=204, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if invocation_type is InvocationType.EVENT:
            request_id = self._invocations.invoke_in_background(scope, config, payload)
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        result = await self._invocations.invoke_tracked(scope, config, payload)
        headers = {
            "x-amzn-RequestId": result.request_id,
            "X-Amz-Executed-Version": result.executed_version,
            "Content-Type": "application/json",
        }
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail).decode()
        return web.Response(status=200, headers=headers, body=result.payload)

    async def _invoke_with_response_stream(
        self, request: web.Request, call: AwsCall, scope: AwsScope, _: bytes | None
    ) -> web.StreamResponse:
        """Refusals are Invoke's, as JSON errors; once the run started, the answer is a 200 event stream:
        a ``PayloadChunk`` per chunk of the response as it comes, then ``InvokeComplete``."""
        invocation_type, config, payload = await self._accept_invocation(request, call, scope)
        if invocation_type is InvocationType.DRY_RUN:
            return web.Response(status=204, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        stream = await self._invocations.invoke_stream(scope, config, payload)
        response = web.StreamResponse(
            status=200,
            headers={
                "x-amzn-RequestId": stream.request_id,
                "X-Amz-Executed-Version": stream.executed_version,
                "Content-Type": EVENT_STREAM_CONTENT_TYPE,
            },
        )
        response.enable_chunked_encoding()
        tail = request.headers.get("X-Amz-Log-Type") == "Tail"
        await _send_stream(request, response, stream, tail=tail, cut=request[_DROP_ANSWER])
        return response

    async def _accept_invocation(
        self, request: web.Request, call: AwsCall, scope: AwsScope
    ) -> tuple[InvocationType, FunctionConfig, bytes]:
        """What Invoke and InvokeWithResponseStream check before a run, in this order: the invocation
        type (against the operation's model: InvokeWithResponseStream has no Event), the payload's size,
        the client context, the function and its state, then (but for DryRun and Event) the account's
        concurrency."""
        ref = parse_function_ref(call.path_params["FunctionName"], request.query.get("Qualifier"))
        raw_type = request.headers.get("X-Amz-Invocation-Type", InvocationType.REQUEST_RESPONSE)
        check_member(call.service, call.name, "InvocationType", raw_type)
        try:
            invocation_type = InvocationType(raw_type)
        except ValueError:  # a type the model knows and the simulator does not
            raise AwsError(
                "InvalidParameterValueException", 400, f"Unsupported invocation type: {raw_type}"
            ) from None
        payload = await request.read()
        limit = _EVENT_PAYLOAD_MAX if invocation_type is InvocationType.EVENT else _SYNC_PAYLOAD_MAX
        if len(payload) > limit:
            raise AwsError(
                "RequestTooLargeException",
                413,
                f"Request must be smaller than {limit} bytes for the {_quota_name(call.name)} operation",
            )
        _check_client_context(request.headers.get("X-Amz-Client-Context"))
        config = await self._invocations.resolve(scope, ref)
        # Beyond the account's concurrency a synchronous invocation is throttled; Lambda queues Event ones.
        if (
            self._concurrency_limit is not None
            and self._stats.running >= self._concurrency_limit
            and invocation_type is InvocationType.REQUEST_RESPONSE
        ):
            raise AwsError(
                "TooManyRequestsException",
                429,
                "Rate Exceeded.",
                extra={"Reason": "ConcurrentInvocationLimitExceeded"},
            )
        return invocation_type, config, payload

    # -- CloudWatch reads: what is delivered by now ----------------------------------------------

    async def _filter_log_events(self, request: web.Request, call: AwsCall) -> web.StreamResponse:
        body = _json_object(await request.read())
        body, empty_page = self._delivery.filter_request(body)
        if empty_page is not None:
            return web.json_response(empty_page, content_type="application/x-amz-json-1.1")
        answer = await self._proxy.fetch(call.service, request, json.dumps(body).encode())
        if answer.status >= 300:
            return _as_response(answer, answer.body)
        group = str(body.get("logGroupName") or body.get("logGroupIdentifier") or "")
        document = self._delivery.filter_answer(group, _json_object(answer.body))
        return _as_response(answer, json.dumps(document).encode())

    async def _get_log_events(self, request: web.Request, call: AwsCall) -> web.StreamResponse:
        raw = await request.read()
        answer = await self._proxy.fetch(call.service, request, raw)
        if answer.status >= 300:
            return _as_response(answer, answer.body)
        body = _json_object(raw)
        token = body.get("nextToken")
        forward = bool(body.get("startFromHead")) or (isinstance(token, str) and token.startswith("f/"))
        document = self._delivery.stream_answer(
            str(body.get("logGroupName") or body.get("logGroupIdentifier") or ""),
            str(body.get("logStreamName", "")),
            _json_object(answer.body),
            forward,
        )
        return _as_response(answer, json.dumps(document).encode())

    # -- state and LoggingConfig overlay --------------------------------------------------------

    async def _create_function(
        self, request: web.Request, call: AwsCall, scope: AwsScope, _: bytes | None
    ) -> web.StreamResponse:
        await self._check_image(_image_uri(_json_object(await request.read())))
        document, answer = await self._forward_json(request, call)
        name = parse_function_ref(str(document.get("FunctionName", ""))).name
        if answer.status < 300 and name:
            self._overlay.record_create(scope.region, name, _logging_config(document), _image_uri(document))
            self._invocations.function_changed(scope.region, name)
        return self._rewritten(answer, scope, lambda doc: [doc])

    async def _update_function_configuration(
        self, request: web.Request, call: AwsCall, scope: AwsScope, _: bytes | None
    ) -> web.StreamResponse:
        document, answer = await self._forward_json(request, call)
        name = parse_function_ref(call.path_params["FunctionName"]).name
        if answer.status < 300:
            self._overlay.record_update(scope.region, name, document)
        self._invocations.function_changed(scope.region, name)
        return self._rewritten(answer, scope, lambda doc: [doc])

    async def _check_image(self, uri: str) -> None:
        """An image of the simulator's ECR must exist and be a single-platform image, as Lambda checks."""
        if uri and self._images is not None and self._images.names(uri):
            await self._images.check(uri)

    async def _forward_json(
        self, request: web.Request, call: AwsCall
    ) -> tuple[dict[str, Any], UpstreamAnswer]:
        """Forward a call with a JSON body to moto: the body as a JSON object ({} if it is not one), and
        moto's answer."""
        body = await request.read()
        return _json_object(body), await self._proxy.fetch(call.service, request, body)

    async def _delete_function(
        self, request: web.Request, call: AwsCall, scope: AwsScope, _: bytes | None
    ) -> web.StreamResponse:
        ref = parse_function_ref(call.path_params["FunctionName"], request.query.get("Qualifier"))
        if (
            self._deleting_seconds > 0
            and ref.qualifier is None
            and self._overlay.knows(scope.region, ref.name)
        ):
            # The function reads Deleting (and cannot be invoked) while the deletion goes on.
            self._overlay.record_deleting(scope.region, ref.name)
            self._invocations.function_changed(scope.region, ref.name)
            await asyncio.sleep(self._deleting_seconds)
        response = await self._proxy.forward(call.service, request)
        if ref.qualifier is None and (response.status < 300 or response.status == 404):
            self._overlay.forget(scope.region, ref.name)
        self._invocations.function_changed(scope.region, ref.name)
        return response

    async def _rewrite_configurations(
        self, request: web.Request, call: AwsCall, scope: AwsScope, body: bytes | None
    ) -> web.StreamResponse:
        if call.name == "UpdateFunctionCode" and body is None:
            body = await request.read()  # small (an ImageUri or a zip's S3 location), and read once
        if call.name == "UpdateFunctionCode":
            await self._check_image(_image_uri(_json_object(body or b"")))
        answer = await self._proxy.fetch(call.service, request, body)
        self._after_lambda_change(request, call, scope, answer.status)
        if call.name == "UpdateFunctionCode" and answer.status < 300:
            name = parse_function_ref(call.path_params["FunctionName"]).name
            self._overlay.record_update(scope.region, name, {}, _image_uri(_json_object(body or b"")))
        if call.name == "GetFunction":
            return self._rewritten(answer, scope, lambda doc: [doc.get("Configuration")])
        if call.name == "ListVersionsByFunction":
            return self._rewritten(answer, scope, lambda doc: doc.get("Versions", []))
        return self._rewritten(answer, scope, lambda doc: [doc])

    async def _list_functions(
        self, request: web.Request, call: AwsCall, scope: AwsScope, body: bytes | None
    ) -> web.StreamResponse:
        answer = await self._proxy.fetch(call.service, request, body)
        if answer.status >= 300:
            return _as_response(answer, answer.body)
        document = _json_object(answer.body)
        # moto ignores MaxItems and Marker: page here, ordered by ARN, the marker being the last ARN.
        functions = sorted(document.get("Functions", []), key=lambda item: str(item.get("FunctionArn", "")))
        try:
            max_items = min(int(request.query.get("MaxItems", _LIST_PAGE_MAX)), _LIST_PAGE_MAX)
            after = _decode_marker(request.query.get("Marker"))
        except ValueError as exc:
            raise AwsError("InvalidParameterValueException", 400, str(exc)) from None
        if after is not None:
            functions = [item for item in functions if str(item.get("FunctionArn", "")) > after]
        page = functions[: max(max_items, 1)]
        document["Functions"] = page
        document.pop("NextMarker", None)
        if len(functions) > len(page):
            document["NextMarker"] = _encode_marker(str(page[-1].get("FunctionArn", "")))
        for configuration in page:
            self._overlay.rewrite(scope.region, configuration)
        return _as_response(answer, json.dumps(document).encode())

    def _rewritten(
        self, answer: UpstreamAnswer, scope: AwsScope, configurations: Callable[[dict[str, Any]], list[Any]]
    ) -> web.Response:
        if answer.status >= 300:
            return _as_response(answer, answer.body)
        document = _json_object(answer.body)
        for configuration in configurations(document):
            if isinstance(configuration, dict):
                self._overlay.rewrite(scope.region, configuration)
        return _as_response(answer, json.dumps(document).encode())

    def _after_lambda_change(self, request: web.Request, call: AwsCall, scope: AwsScope, status: int) -> None:
        """Any write to a function (code, concurrency, versions...) may change what an Invoke runs."""
        if call.service != "lambda" or request.method == "GET" or status >= 300:
            return
        identifier = call.path_params.get("FunctionName")
        if identifier:
            self._invocations.function_changed(scope.region, parse_function_ref(identifier).name)


async def _send_stream(
    request: web.Request, response: web.StreamResponse, stream: InvocationStream, *, tail: bool, cut: bool
) -> None:
    """Write ``stream`` as event-stream messages as its chunks come. A client that goes away stops the
    writing, not the reading: the stream is read to its end, so the run's bookkeeping is untouched and a
    live producer is never held back. ``cut`` (a drop_answer fault) closes the connection instead of
    sending ``InvokeComplete``: a stream lost before its end."""
    connected = True

    async def send(message: bytes) -> None:
        nonlocal connected
        if not connected:
            return
        try:
            if not response.prepared:
                await response.prepare(request)
            await response.write(message)
        except ConnectionResetError:
            connected = False
            log.info("InvokeWithResponseStream %s: the client went away; the run goes on", stream.request_id)

    try:
        async for chunk in stream:
            for message in payload_chunks(chunk):
                await send(message)
        outcome = await stream.outcome()
    except Exception as exc:
        # The headers (200) are out: a failure of ours ends the stream with an error the client can read.
        log.exception("InvokeWithResponseStream %s failed in the simulator", stream.request_id)
        outcome = StreamOutcome("ServiceException", f"the simulator failed during the stream: {exc!r}", b"")
    if cut:
        _drop_connection(request)
        return
    log_result = base64.b64encode(outcome.log_tail).decode() if tail else None
    await send(invoke_complete(outcome.error_code, outcome.error_details, log_result))
    if connected:
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()


def _quota_name(operation: str) -> str:
    """The operation as Lambda's payload-quota message names it."""
    return "InvokeFunction" if operation == "Invoke" else operation


def _check_client_context(value: str | None) -> None:
    """``X-Amz-Client-Context``: base64 of a JSON object, as Lambda demands of it."""
    if value is None:
        return
    try:
        document = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        document = None
    if not isinstance(document, dict):
        raise AwsError(
            "InvalidRequestContentException",
            400,
            "Client context must be a valid Base64-encoded JSON object.",
        )


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection without an answer, as a lost network would."""
    request.protocol.force_close()
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never sent: the transport is already closed


def _as_response(answer: UpstreamAnswer, body: bytes) -> web.Response:
    return web.Response(status=answer.status, headers=answer.headers, body=body)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _logging_config(document: dict[str, Any]) -> dict[str, Any] | None:
    value = document.get("LoggingConfig")
    return value if isinstance(value, dict) else None


def _image_uri(document: dict[str, Any]) -> str:
    """``Code.ImageUri`` of a CreateFunction body, or ``ImageUri`` of an UpdateFunctionCode one."""
    code = document.get("Code")
    uri = code.get("ImageUri") if isinstance(code, dict) else document.get("ImageUri")
    return uri if isinstance(uri, str) else ""


def _encode_marker(arn: str) -> str:
    return base64.urlsafe_b64encode(arn.encode()).decode()


def _decode_marker(marker: str | None) -> str | None:
    if not marker:
        return None
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"Invalid marker: {marker}") from None
