"""The internal-API server: aiohttp handlers that parse the wire, call the Backend, serialize results.

Handlers never talk to a cloud; errors from :mod:`sockerless.errors` become
``{"message": ...}`` responses in exactly one place, :func:`error_middleware`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

import attrs
from aiohttp import web
from aiohttp.typedefs import Middleware

from sockerless.backend import CI_RUNNER_HINT as _CI_HINT
from sockerless.backend import AttachOptions, Backend, LogsOptions
from sockerless.errors import (
    InvalidParameter,
    NotFound,
    NotImplementedByBackend,
    SockerlessError,
    Unavailable,
)
from sockerless.filters import CONTAINER_FILTERS, parse_filters
from sockerless.listen import (
    BACKLOG,
    Listener,
    remove_socket_file,
)
from sockerless.models import (
    AuthRequest,
    ContainerCreateRequest,
    ExecConfig,
    ImagePullRequest,
    WaitCondition,
    parse_time,
    structure,
    unstructure,
)
from sockerless.observability import (
    RequestContext,
    bind_request,
    flush_after_answer_lines,
    log_after_answer,
    unbind_request,
)
from sockerless.streams import LOGS_FINAL_HEADER, encode_frame, format_log_time
from sockerless.tls import Endpoint, TLSListener, start_site
from sockerless.views import SummaryRows

__all__ = [
    "JSON_CONTENT_TYPE",
    "InternalAPIServer",
    "ServerOptions",
    "create_app",
    "error_response",
    "json_body_response",
    "json_response",
    "query_bool",
    "run_until_signalled",
]

log = logging.getLogger("sockerless.server")
access_log = logging.getLogger("sockerless.access")

JSON_CONTENT_TYPE = "application/json"
PREFIX = "/internal/v1"
T = TypeVar("T")

BACKEND_KEY = web.AppKey("backend", Backend)


class ServerOptions:
    """The server settings the handlers need (a subset of the ``server`` config section), and the
    count of requests in flight."""

    def __init__(
        self,
        *,
        token: str = "",
        max_inflight_requests: int = 512,
        max_body_bytes: int = 1 << 20,
        shutdown_grace: float = 10.0,
    ) -> None:
        self.token = token
        self.max_inflight_requests = max_inflight_requests
        self.max_body_bytes = max_body_bytes
        self.shutdown_grace = shutdown_grace
        self.inflight = 0  # short requests: what back-pressure counts
        self.active = 0  # every request, long-lived ones (wait, follow) included: what shutdown drains
        self.quiet = asyncio.Event()
        self.quiet.set()


TASKS_KEY: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("detached_tasks")
OPTIONS_KEY = web.AppKey("server_options", ServerOptions)


# ---------------------------------------------------------------------------- wire helpers


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with ``Content-Type: application/json`` exactly: Go clients compare the header."""
    return json_body_response(json.dumps(data).encode(), status)


def json_body_response(body: bytes, status: int = 200) -> web.Response:
    """Already encoded JSON, with the same header as :func:`json_response`."""
    return web.Response(body=body, status=status, headers={"Content-Type": JSON_CONTENT_TYPE})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    response = json_response({"message": message}, status)
    response.headers.update(headers or {})
    return response


_TRUE = {"1", "true", "True", "TRUE", "yes"}
_FALSE = {"0", "false", "False", "FALSE", "no", ""}


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidParameter(f"invalid boolean for {name!r}: {raw!r}")


def query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid integer for {name!r}: {raw!r}") from None


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    if not request.can_read_body:
        if required:
            raise InvalidParameter("request body is empty; a JSON object is required")
        return {}
    try:
        return _JSON_BODY.decode((await request.read()).decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidParameter("request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise InvalidParameter(
            f"invalid JSON body: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidParameter("invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # Python's limit on integer digits, or a NaN/Infinity literal
        raise InvalidParameter(f"invalid JSON body: {exc}") from None


def _refuse_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's parser accepts them unless told not to."""
    raise ValueError(f"{name} is not valid JSON")


#: One decoder for every body (``json.loads`` with an option builds a decoder per call).
_JSON_BODY: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def _backend(request: web.Request) -> Backend:
    return request.app[BACKEND_KEY]


async def _detached(request: web.Request, coro: Coroutine[Any, Any, T]) -> T:
    """Run a state-changing backend call so that a client hanging up cannot cut it in half.

    The handler may be cancelled on disconnect; the operation is shielded and tracked, and
    shutdown waits for it.
    """
    tasks = request.app[TASKS_KEY]
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return await asyncio.shield(task)


def _unsupported(backend: Backend, capability: str) -> NotImplementedByBackend:
    operation, hint = {
        "exec": ("exec", _CI_HINT),
        "attach": ("attach", _CI_HINT),
        "networks": ("networks", ""),
        "volumes": ("volumes", ""),
        "image_load": ("image load", "Push the image to a registry the backend can pull from instead."),
        "image_pull": ("image pull", ""),
        "logs": ("logs", ""),
    }[capability]
    return NotImplementedByBackend.for_operation(backend.name, operation, hint)


def requires(capability: str) -> Callable[[Handler], Handler]:
    """Gate a handler on the backend's declared capability: the one source of truth for 501s."""

    def decorate(handler: Handler) -> Handler:
        async def gated(request: web.Request) -> web.StreamResponse:
            backend = _backend(request)
            if not getattr(backend.capabilities, capability):
                raise _unsupported(backend, capability)
            return await handler(request)

        gated.__name__ = handler.__name__
        return gated

    return decorate


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------- middlewares


def make_error_middleware(
    internal_error: str,
    logger: logging.Logger,
    passthrough: tuple[type[BaseException], ...] = (ConnectionResetError,),
) -> Middleware:
    """The one place errors leave a server: a :mod:`sockerless.errors` exception as its status and
    message, aiohttp's own 4xx in the same ``{"message": ...}`` form, anything unexpected logged to
    ``logger`` and answered 500 with ``internal_error``. Cancellation and ``passthrough`` (a client
    gone) go through."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except SockerlessError as exc:
            headers = {}
            if isinstance(exc, Unavailable) and exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
            return error_response(exc.status, exc.message, headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {404: "page not found", 405: "method not allowed", 413: "request body too large"}
            return error_response(exc.status, message.get(exc.status, exc.reason))
        except asyncio.CancelledError:
            raise
        except passthrough:
            raise
        except Exception:
            logger.exception(
                "unexpected error", extra={"fields": {"method": request.method, "path": request.path}}
            )
            return error_response(500, internal_error)

    return error_middleware


error_middleware = make_error_middleware("internal error; see the backend log", log)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One structured line per request: method, path, status, duration and cloud request IDs.

    Written off the answer's path with ``log_after_answer``, after the lines the request's work
    gave it. No client waits for a log line.
    """
    context = RequestContext(method=request.method, path=request.path)
    token = bind_request(context)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        unbind_request(token)
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if context.cloud_request_ids:
            fields["cloud_request_ids"] = context.cloud_request_ids
        log_after_answer(access_log, "request", fields)


def _long_lived(request: web.Request) -> bool:
    path = request.path
    return path.endswith(("/wait", "/attach")) or (
        path.endswith("/logs") and request.query.get("follow") in _TRUE
    )


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer-token check (when configured) and back-pressure on short requests."""
    options = request.app[OPTIONS_KEY]
    if options.token:
        supplied = request.headers.get("Authorization", "")
        expected = f"Bearer {options.token}"
        if not hmac.compare_digest(supplied.encode(), expected.encode()):
            return error_response(401, "unauthorized: a valid bearer token is required")
    if _long_lived(request):
        return await _counted(options, handler, request)
    if options.inflight >= options.max_inflight_requests:
        return error_response(503, "the backend is busy; retry shortly", {"Retry-After": "1"})
    options.inflight += 1
    try:
        return await _counted(options, handler, request)
    finally:
        options.inflight -= 1


async def _counted(options: ServerOptions, handler: Handler, request: web.Request) -> web.StreamResponse:
    options.active += 1
    options.quiet.clear()
    try:
        return await handler(request)
    finally:
        options.active -= 1
        if not options.active:
            options.quiet.set()


# ---------------------------------------------------------------------------- system


async def capabilities(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(_backend(request).capability_report()))


async def info(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(await _backend(request).info()))


async def version(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(await _backend(request).version()))


# ---------------------------------------------------------------------------- containers


async def create_container(request: web.Request) -> web.StreamResponse:
    body = await read_json(request)
    create = structure(body, ContainerCreateRequest)
    name = request.query.get("name") or None
    created = await _detached(request, _backend(request).create_container(create, name))
    return json_response(unstructure(created), 201)


async def list_containers(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), CONTAINER_FILTERS)
    limit = query_int(request, "limit")
    rows = await _backend(request).list_containers(
        all=query_bool(request, "all"), limit=limit if limit and limit > 0 else None, filters=filters
    )
    if isinstance(rows, SummaryRows):  # encoded from the backend's per-container cache
        return json_body_response(rows.to_json())
    return json_response(unstructure(rows))


async def inspect_container(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(await _backend(request).inspect_container(request.match_info["id"])))


async def start_container(request: web.Request) -> web.StreamResponse:
    await _detached(request, _backend(request).start_container(request.match_info["id"]))
    return web.Response(status=204)


async def stop_container(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    timeout, sig = query_int(request, "t"), request.query.get("signal") or None
    await _detached(request, backend.stop_container(request.match_info["id"], timeout=timeout, signal=sig))
    return web.Response(status=204)


async def kill_container(request: web.Request) -> web.StreamResponse:
    backend, sig = _backend(request), request.query.get("signal") or None
    await _detached(request, backend.kill_container(request.match_info["id"], signal=sig))
    return web.Response(status=204)


async def restart_container(request: web.Request) -> web.StreamResponse:
    backend, timeout = _backend(request), query_int(request, "t")
    await _detached(request, backend.restart_container(request.match_info["id"], timeout=timeout))
    return web.Response(status=204)


async def remove_container(request: web.Request) -> web.StreamResponse:
    backend = _backend(request)
    force, volumes = query_bool(request, "force"), query_bool(request, "v")
    await _detached(request, backend.remove_container(request.match_info["id"], force=force, volumes=volumes))
    return web.Response(status=204)


async def wait_container(request: web.Request) -> web.StreamResponse:
    """Headers at once (``docker run`` sends start only after it has them), the body at the exit."""
    condition = WaitCondition.from_query(request.query.get("condition"))
    waiter = asyncio.ensure_future(
        await _backend(request).wait_container(request.match_info["id"], condition)
    )
    try:
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON_CONTENT_TYPE})
        await response.prepare(request)
        await response.write(b"")  # flush the headers now
        try:
            result = await waiter
            body = unstructure(result)
        except SockerlessError as exc:
            # Headers are gone already: report a failure in the body as Docker does.
            body = {"StatusCode": -1, "Error": {"Message": exc.message}}
        await response.write_eof(json.dumps(body).encode() + b"\n")  # one write: body and end
        return response
    finally:
        waiter.cancel()


#: Output gathered before a write when logs are not followed.
_LOGS_WRITE_BYTES = 64 * 1024


def _logs_options(request: web.Request) -> LogsOptions:
    tail_raw = request.query.get("tail", "all")
    tail: int | None
    if tail_raw in ("all", ""):
        tail = None
    else:
        try:
            tail = int(tail_raw)
        except ValueError:
            raise InvalidParameter(f"invalid tail {tail_raw!r}: expected 'all' or a number") from None
        tail = None if tail < 0 else tail
    since, until = request.query.get("since"), request.query.get("until")
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not stdout and not stderr:
        raise InvalidParameter("you must choose at least one stream")
    return LogsOptions(
        stdout=stdout,
        stderr=stderr,
        follow=query_bool(request, "follow"),
        timestamps=query_bool(request, "timestamps"),
        tail=tail,
        since=parse_time(since) if since and since != "0" else None,
        until=parse_time(until) if until and until != "0" else None,
    )


async def _open_stream(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    return response


@requires("logs")
async def container_logs(request: web.Request) -> web.StreamResponse:
    options = _logs_options(request)
    backend = _backend(request)
    if options.follow and not backend.capabilities.logs_follow:
        # The backend cannot follow: answer with what is available now, as the capability says.
        options = attrs.evolve(options, follow=False)
    logs = await backend.container_logs(request.match_info["id"], options)
    content_type = (
        "application/vnd.docker.raw-stream" if logs.tty else "application/vnd.docker.multiplexed-stream"
    )
    headers = {"Content-Type": content_type}
    if logs.final:
        headers[LOGS_FINAL_HEADER] = "true"
    # Followed lines go out one by one as they come, after headers sent at once. Without follow the
    # lines are at hand: an output shorter than one write is a plain answer (headers, output and end
    # in one send, and a failure while reading it is still an error status); a longer one streams.
    flush_at = 1 if options.follow else _LOGS_WRITE_BYTES
    response = await _open_stream(request, headers) if options.follow else None
    pending: list[bytes] = []
    size = 0
    try:
        async for line in logs.lines:
            data = line.data
            if options.timestamps:
                data = format_log_time(line.timestamp).encode() + b" " + data
            frame = data if logs.tty else encode_frame(line.stream, data)
            pending.append(frame)
            size += len(frame)
            if size >= flush_at:
                if response is None:
                    response = await _open_stream(request, headers)
                await response.write(b"".join(pending))
                pending, size = [], 0
    finally:
        aclose = getattr(logs.lines, "aclose", None)
        if aclose is not None:
            await aclose()
    if response is None:
        return web.Response(status=200, body=b"".join(pending), headers=headers)
    await response.write_eof(b"".join(pending))
    return response


@requires("attach")
async def attach_container(request: web.Request) -> web.StreamResponse:
    options = AttachOptions(
        stream=query_bool(request, "stream"),
        stdin=query_bool(request, "stdin"),
        stdout=query_bool(request, "stdout"),
        stderr=query_bool(request, "stderr"),
        logs=query_bool(request, "logs"),
        detach_keys=request.query.get("detachKeys", ""),
    )
    await _backend(request).attach_container(request.match_info["id"], options)
    raise _unsupported(_backend(request), "attach")


async def prune_containers(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), frozenset({"label", "until"}))
    result = await _detached(request, _backend(request).prune_containers(filters))
    return json_response(unstructure(result))


# ---------------------------------------------------------------------------- exec


@requires("exec")
async def create_exec(request: web.Request) -> web.StreamResponse:
    config = structure(await read_json(request), ExecConfig)
    exec_id = await _detached(request, _backend(request).create_exec(request.match_info["id"], config))
    return json_response({"Id": exec_id}, 201)


async def inspect_exec(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(await _backend(request).inspect_exec(request.match_info["id"])))


@requires("exec")
async def start_exec(request: web.Request) -> web.StreamResponse:
    await _backend(request).start_exec(request.match_info["id"], await read_json(request, required=False))
    raise _unsupported(_backend(request), "exec")


# ---------------------------------------------------------------------------- images


async def _ndjson(request: web.Request, lines: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
    """Stream NDJSON; an error before the first line is a normal error response, after it an
    in-stream ``errorDetail`` line (the status is already 200)."""
    try:
        first = await anext(lines)
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON_CONTENT_TYPE})
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(json.dumps(first).encode() + b"\n")
            async for line in lines:
                await response.write(json.dumps(line).encode() + b"\n")
    except SockerlessError as exc:
        error = {"errorDetail": {"message": exc.message}, "error": exc.message}
        await response.write(json.dumps(error).encode() + b"\n")
    await response.write_eof()
    return response


@requires("image_pull")
async def pull_image(request: web.Request) -> web.StreamResponse:
    pull = structure(await read_json(request), ImagePullRequest)
    if not pull.reference:
        raise InvalidParameter("Reference is required")
    return await _ndjson(request, _backend(request).pull_image(pull))


async def list_images(request: web.Request) -> web.StreamResponse:
    return json_response(unstructure(await _backend(request).list_images()))


async def inspect_image(request: web.Request) -> web.StreamResponse:
    name = request.query.get("name", "")
    if not name:
        raise InvalidParameter("the name query parameter is required")
    return json_response(unstructure(await _backend(request).inspect_image(name)))


async def tag_image(request: web.Request) -> web.StreamResponse:
    name, repo = request.query.get("name", ""), request.query.get("repo", "")
    if not name or not repo:
        raise InvalidParameter("name and repo query parameters are required")
    await _detached(
        request, _backend(request).tag_image(name, repo, request.query.get("tag", "") or "latest")
    )
    return web.Response(status=201)


@requires("image_load")
async def load_image(request: web.Request) -> web.StreamResponse:
    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 16):
            yield chunk

    return await _ndjson(request, await _backend(request).load_image(chunks()))


async def auth(request: web.Request) -> web.StreamResponse:
    credentials = structure(await read_json(request), AuthRequest)
    return json_response(unstructure(await _backend(request).auth(credentials)))


# ---------------------------------------------------------------------------- networks and volumes


@requires("networks")
async def networks(request: web.Request) -> web.StreamResponse:
    backend, network_id, verb = (
        _backend(request),
        request.match_info.get("id", ""),
        request.match_info.get("verb"),
    )
    filters = parse_filters(
        request.query.get("filters"), frozenset({"id", "name", "label", "driver", "scope", "type"})
    )
    if request.method == "POST" and not network_id:
        return json_response(await _detached(request, backend.create_network(await read_json(request))), 201)
    if request.method == "GET" and not network_id:
        return json_response(await backend.list_networks(filters))
    if request.method == "GET":
        return json_response(await backend.inspect_network(network_id))
    if request.method == "DELETE":
        await _detached(request, backend.remove_network(network_id))
        return web.Response(status=204)
    if verb == "connect":
        await _detached(request, backend.connect_network(network_id, await read_json(request)))
    elif verb == "disconnect":
        await _detached(request, backend.disconnect_network(network_id, await read_json(request)))
    else:
        raise NotFound("page not found")
    return web.Response(status=200)


@requires("networks")
async def prune_networks(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), frozenset({"label", "until"}))
    return json_response(await _detached(request, _backend(request).prune_networks(filters)))


@requires("volumes")
async def volumes(request: web.Request) -> web.StreamResponse:
    backend, name = _backend(request), request.match_info.get("name", "")
    if request.method == "POST":
        return json_response(await _detached(request, backend.create_volume(await read_json(request))), 201)
    if request.method == "GET" and not name:
        filters = parse_filters(
            request.query.get("filters"), frozenset({"name", "label", "driver", "dangling"})
        )
        return json_response(await backend.list_volumes(filters))
    if request.method == "GET":
        return json_response(await backend.inspect_volume(name))
    await _detached(request, backend.remove_volume(name, force=query_bool(request, "force")))
    return web.Response(status=204)


@requires("volumes")
async def prune_volumes(request: web.Request) -> web.StreamResponse:
    filters = parse_filters(request.query.get("filters"), frozenset({"label", "all"}))
    return json_response(await _detached(request, _backend(request).prune_volumes(filters)))


# ---------------------------------------------------------------------------- the application


def _routes() -> list[web.RouteDef]:
    c = PREFIX + "/containers"
    return [
        web.get(PREFIX + "/capabilities", capabilities),
        web.get(PREFIX + "/info", info),
        web.get(PREFIX + "/version", version),
        web.post(c, create_container),
        web.get(c, list_containers),
        web.post(c + "/prune", prune_containers),
        web.get(c + "/{id}", inspect_container),
        web.delete(c + "/{id}", remove_container),
        web.post(c + "/{id}/start", start_container),
        web.post(c + "/{id}/stop", stop_container),
        web.post(c + "/{id}/kill", kill_container),
        web.post(c + "/{id}/restart", restart_container),
        web.post(c + "/{id}/wait", wait_container),
        web.get(c + "/{id}/logs", container_logs),
        web.post(c + "/{id}/attach", attach_container),
        web.post(c + "/{id}/exec", create_exec),
        web.get(PREFIX + "/exec/{id}", inspect_exec),
        web.post(PREFIX + "/exec/{id}/start", start_exec),
        web.post(PREFIX + "/images/pull", pull_image),
        web.get(PREFIX + "/images", list_images),
        web.get(PREFIX + "/images/inspect", inspect_image),
        web.post(PREFIX + "/images/tag", tag_image),
        web.post(PREFIX + "/images/load", load_image),
        web.post(PREFIX + "/auth", auth),
        web.post(PREFIX + "/networks", networks),
        web.get(PREFIX + "/networks", networks),
        web.post(PREFIX + "/networks/prune", prune_networks),
        web.get(PREFIX + "/networks/{id}", networks),
        web.delete(PREFIX + "/networks/{id}", networks),
        web.post(PREFIX + "/networks/{id}/{verb:connect|disconnect}", networks),
        web.post(PREFIX + "/volumes", volumes),
        web.get(PREFIX + "/volumes", volumes),
        web.post(PREFIX + "/volumes/prune", prune_volumes),
        web.get(PREFIX + "/volumes/{name}", volumes),
        web.delete(PREFIX + "/volumes/{name}", volumes),
    ]


async def _drain(app: web.Application) -> None:
    """At shutdown (no new connections any more): let requests in flight and the state changes they
    started finish within the grace period; then cancel what is left of the changes (the backend
    recovers an interrupted change at its next start) and leave the requests to aiohttp to cancel."""
    options, detached = app[OPTIONS_KEY], app[TASKS_KEY]
    loop = asyncio.get_running_loop()
    # aiohttp then waits up to _CANCEL_SECONDS for each request, and as long again once cancelled.
    grace = max(0.0, options.shutdown_grace - 2 * _CANCEL_SECONDS)
    deadline = loop.time() + grace
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(options.quiet.wait(), grace)
    if detached:
        _, pending = await asyncio.wait(list(detached), timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "shutdown: cancelled state changes still in flight after the grace period",
                extra={"fields": {"count": len(pending), "grace_seconds": options.shutdown_grace}},
            )
            await asyncio.gather(*pending, return_exceptions=True)


def create_app(backend: Backend, options: ServerOptions | None = None) -> web.Application:
    """The internal-API application for ``backend``; the caller owns the backend's start and close."""
    options = options or ServerOptions()
    app = web.Application(
        middlewares=[access_middleware, error_middleware, guard_middleware],
        client_max_size=options.max_body_bytes,
        # Docker IDs and filters fit easily; a longer line is answered by aiohttp itself in text/plain.
        handler_args={"max_field_size": 16384, "max_line_size": 65536},
    )
    app[BACKEND_KEY] = backend
    app[TASKS_KEY] = set()
    app[OPTIONS_KEY] = options
    app.add_routes(_routes())
    app.on_shutdown.append(_drain)
    return app


# ---------------------------------------------------------------------------- running it

#: At the end of the grace period, how long aiohttp waits for a request still running before it
#: cancels it, and then for the cancelled request to end (taken from the grace period).
_CANCEL_SECONDS = 0.25


class InternalAPIServer:
    """Serves one backend on a Unix socket or TCP, with graceful shutdown.

    ``start()`` starts the backend and then listens; ``stop()`` stops accepting, lets in-flight
    requests finish within ``shutdown_grace`` seconds, closes the backend and removes the socket.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        socket_path: str = "/var/run/sockerless-backend.sock",
        tcp: str = "",
        socket_mode: int = 0o600,
        socket_group: str = "",
        shutdown_grace: float = 10.0,
        token: str = "",
        allow_public: bool = False,
        max_inflight_requests: int = 512,
        max_body_bytes: int = 1 << 20,
        tls_cert: str = "",
        tls_key: str = "",
        tls_client_ca: str = "",
    ) -> None:
        self.backend = backend
        self._endpoint = Endpoint(
            socket_path, tcp, socket_mode, socket_group, token, allow_public, tls_cert, tls_key, tls_client_ca
        )
        self._grace = shutdown_grace
        self._options = ServerOptions(
            token=token,
            max_inflight_requests=max_inflight_requests,
            max_body_bytes=max_body_bytes,
            shutdown_grace=shutdown_grace,
        )
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._tls_listener: TLSListener | None = None
        self._backend_started = False

    @property
    def address(self) -> str:
        """``unix:///path`` or ``tcp://host:port`` once listening."""
        if self._listener is None:
            raise RuntimeError("the server is not listening")
        return self._listener.description

    @property
    def url(self) -> str:
        """The address as a client's URL: ``unix:///path``, ``http://host:port`` or ``https://host:port``."""
        address = self.address
        if address.startswith("tcp://"):
            return ("https://" if self._endpoint.tls_cert else "http://") + address.removeprefix("tcp://")
        return address

    async def start(self) -> None:
        # Fail on a bad address or certificate before starting cloud clients.
        listener, tls = self._endpoint.bind("server")
        try:
            await self.backend.start()
            self._backend_started = True
            app = create_app(self.backend, self._options)
            # The grace period is spent in _drain (on_shutdown); what still runs after it is cancelled.
            self._runner = web.AppRunner(
                app, handler_cancellation=True, shutdown_timeout=_CANCEL_SECONDS, access_log=None
            )
            await self._runner.setup()
            self._tls_listener = await start_site(self._runner, listener.sock, tls, backlog=BACKLOG)
        except BaseException:
            listener.sock.close()
            remove_socket_file(listener.socket_path)
            if self._backend_started:
                await self.backend.close()
            raise
        self._listener = listener
        security = "mutual TLS" if self._endpoint.tls_client_ca else "TLS" if tls else "none"
        log.info(
            "serving",
            extra={
                "fields": {"backend": self.backend.name, "address": listener.description, "tls": security}
            },
        )

    async def stop(self) -> None:
        if self._tls_listener is not None:
            await self._tls_listener.stop_accepting()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()  # stop accepting, drain within the grace period, cancel the rest
        if self._tls_listener is not None:
            tls_listener, self._tls_listener = self._tls_listener, None
            await tls_listener.close()
        if self._backend_started:
            self._backend_started = False
            await self.backend.close()
        if self._listener is not None:
            remove_socket_file(self._listener.socket_path)
        flush_after_answer_lines()
        log.info("stopped", extra={"fields": {"backend": self.backend.name}})


async def run_until_signalled(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    """Start, wait for SIGTERM or SIGINT, stop. Used by every command-line entry point."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await start()
        try:
            await stopping.wait()
        finally:
            await stop()
    finally:
        flush_after_answer_lines()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
