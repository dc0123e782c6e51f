"""The internal API as an OpenAPI 3.1 document, derived from the models and the server's route table.

Schemas come from the attrs classes in :mod:`sockerless.models` (wire names through
:func:`~sockerless.models.wire_name`, ``str_slice`` fields as a string or a list of strings,
``X | None`` as nullable, nested classes as ``$ref`` components). Paths and methods come from
:func:`sockerless.server._routes`; what the route table cannot say (query parameters, bodies,
statuses) is in :data:`OPERATIONS`, one entry per route. :func:`build_openapi` refuses a route
without an entry and an entry without a route, so the document cannot drift from the server.

``python -m sockerless.openapi [PATH]`` writes ``docs/openapi.json``; ``--check`` only compares.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import attrs
from attrs import frozen

from sockerless.filters import CONTAINER_FILTERS
from sockerless.models import (
    AuthRequest,
    AuthResponse,
    BackendInfo,
    CapabilityReport,
    Container,
    ContainerConfig,
    ContainerCreateRequest,
    ContainerCreateResponse,
    ContainerSummary,
    ExecConfig,
    ExecInstance,
    HostConfig,
    Image,
    ImagePullRequest,
    ImageSummary,
    PruneResponse,
    VersionInfo,
    WaitCondition,
    WaitResponse,
    converter,
    wire_name,
)
from sockerless.server import _FALSE, _TRUE, PREFIX, _routes

__all__ = [
    "DEFAULT_PATH",
    "OPENAPI_VERSION",
    "OPERATIONS",
    "Operation",
    "Param",
    "build_openapi",
    "main",
    "render_openapi",
]

OPENAPI_VERSION = "3.1.0"
DEFAULT_PATH = Path("docs/openapi.json")
JSONObject = dict[str, Any]

_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_SCALARS: Mapping[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}


# ---------------------------------------------------------------------------- schemas from the models


class _Schemas:
    """Collects one component per attrs class reached from an operation."""

    def __init__(self) -> None:
        self.components: dict[str, JSONObject] = {}
        self._classes: dict[str, type[Any]] = {}

    def ref(self, cls: type[Any]) -> JSONObject:
        name = cls.__name__
        known = self._classes.get(name)
        if known is None:
            self._classes[name] = cls
            self.components[name] = {}  # reserve first: classes may refer to themselves
            self.components[name] = self._object(cls)
        elif known is not cls:
            raise ValueError(f"two models share the schema name {name}: {known!r} and {cls!r}")
        return {"$ref": _SCHEMAS + name}

    def of(self, tp: Any) -> JSONObject:
        """The JSON Schema of a field type."""
        if tp is Any:
            return {}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (Union, types.UnionType):
            present = [arg for arg in args if arg is not type(None)]
            inner = self.of(present[0]) if len(present) == 1 else {"anyOf": [self.of(a) for a in present]}
            return _nullable(inner) if len(present) < len(args) else inner
        if tp in _SCALARS:
            return {"type": _SCALARS[tp]}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [member.value for member in tp]}
        if origin is list:
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of(args[1])}
        if attrs.has(tp):
            return self.ref(tp)
        raise TypeError(f"no JSON Schema for the field type {tp!r}")

    def _object(self, cls: type[Any]) -> JSONObject:
        hints = typing.get_type_hints(cls)
        snake = getattr(cls, "__sockerless_snake__", False)  # the converter's rule, see models._snake
        properties: JSONObject = {}
        required: list[str] = []
        for attribute in attrs.fields(cls):
            name = attribute.name if snake and "wire" not in attribute.metadata else wire_name(attribute)
            if attribute.metadata.get("str_slice"):
                schema = _str_slice(nullable=attribute.default is None)
            else:
                schema = self.of(hints[attribute.name])
            default = _default(attribute)
            if default is not attrs.NOTHING:
                schema = {**schema, "default": default}
            properties[name] = schema
            if attribute.default is attrs.NOTHING:
                required.append(name)
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = _description(cls)
        if description:
            schema["description"] = description
        return schema


def _nullable(schema: JSONObject) -> JSONObject:
    if not schema:
        return schema  # any value, null included
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _str_slice(*, nullable: bool) -> JSONObject:
    """Docker's ``strslice``: ``"echo hi"`` or ``["echo", "hi"]``."""
    kinds = ["string", "array", "null"] if nullable else ["string", "array"]
    return {"type": kinds, "items": {"type": "string"}}


def _default(attribute: attrs.Attribute[Any]) -> Any:
    default: Any = attribute.default
    if default is attrs.NOTHING:
        return attrs.NOTHING
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return attrs.NOTHING
        default = default.factory()
    return converter.unstructure(default)


def _description(cls: type[Any]) -> str:
    """The first paragraph of the class docstring, on one line (reST markup kept)."""
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


# ---------------------------------------------------------------------------- what the route table cannot say


@frozen
class Param:
    """A query parameter: its name, schema, whether it is required, and what it means."""

    name: str
    schema: JSONObject
    description: str = ""
    required: bool = False
    json_encoded: bool = False  # sent as a JSON document in the query string (``filters``)


@frozen
class Operation:
    """One route's contract beyond its method and path.

    ``body`` is an attrs class, a schema, or None; ``responses`` maps a success status to an attrs
    class, a list of one (a JSON array), a schema, a ``(media type, schema)`` pair, or None (no
    body); ``errors`` lists the error statuses this route answers besides the ones every route may.
    """

    operation_id: str
    summary: str
    tag: str
    responses: Mapping[int, Any]
    query: Sequence[Param] = ()
    body: Any = None
    body_required: bool = True
    body_media_type: str = "application/json"
    errors: Sequence[int] = ()
    cloud: bool = True  # reaches the backend's cloud: may answer 403/502/503/504


def _bool(name: str, description: str = "") -> Param:
    return Param(name, {"type": "string", "enum": sorted(_TRUE | _FALSE)}, description)


def _int(name: str, description: str) -> Param:
    return Param(name, {"type": "integer"}, description)


def _text(name: str, description: str, *, required: bool = False) -> Param:
    return Param(name, {"type": "string"}, description, required)


def _filters(keys: frozenset[str]) -> Param:
    values = {
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"type": "object", "additionalProperties": {"type": "boolean"}},
        ]
    }
    schema = {
        "type": "object",
        "properties": {key: values for key in sorted(keys)},
        "additionalProperties": False,
    }
    return Param(
        "filters",
        schema,
        'JSON: {"key": ["value"]} or {"key": {"value": true}}; keys: ' + ", ".join(sorted(keys)),
        json_encoded=True,
    )


_STREAM = {"type": "string", "format": "binary"}
_ANY_OBJECT: JSONObject = {"type": "object"}
_PROGRESS = {
    "type": "object",
    "description": "One NDJSON line; a failure after the stream started is "
    '{"errorDetail": {"message": M}, "error": M}.',
    "properties": {
        "status": {"type": "string"},
        "error": {"type": "string"},
        "errorDetail": {"type": "object", "properties": {"message": {"type": "string"}}},
    },
}
_ID_OBJECT = {"type": "object", "required": ["Id"], "properties": {"Id": {"type": "string"}}}
_LOG_STREAMS = {
    "application/vnd.docker.multiplexed-stream": {"schema": _STREAM},
    "application/vnd.docker.raw-stream": {"schema": _STREAM},
}

_C = PREFIX + "/containers"
_N = PREFIX + "/networks"
_V = PREFIX + "/volumes"

#: Every route of :func:`sockerless.server._routes`, keyed by method and aiohttp path.
OPERATIONS: Mapping[tuple[str, str], Operation] = {
    ("GET", PREFIX + "/capabilities"): Operation(
        "Capabilities", "What this backend can do", "System", {200: CapabilityReport}, cloud=False
    ),
    ("GET", PREFIX + "/info"): Operation("SystemInfo", "Backend information", "System", {200: BackendInfo}),
    ("GET", PREFIX + "/version"): Operation("SystemVersion", "Version", "System", {200: VersionInfo}),
    ("POST", _C): Operation(
        "ContainerCreate",
        "Create a container",
        "Containers",
        {201: ContainerCreateResponse},
        query=[_text("name", "Container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+, a leading / allowed)")],
        body=ContainerCreateRequest,
        errors=[400, 404, 409, 413, 501],
    ),
    ("GET", _C): Operation(
        "ContainerList",
        "List containers",
        "Containers",
        {200: [ContainerSummary]},
        query=[
            _bool("all", "Include stopped containers"),
            _int("limit", "At most this many, newest first (implies all)"),
            _filters(CONTAINER_FILTERS),
        ],
        errors=[400],
    ),
    ("POST", _C + "/prune"): Operation(
        "ContainerPrune",
        "Remove stopped containers",
        "Containers",
        {200: PruneResponse},
        query=[_filters(frozenset({"label", "until"}))],
        errors=[400],
    ),
    ("GET", _C + "/{id}"): Operation(
        "ContainerInspect", "Inspect a container", "Containers", {200: Container}, errors=[404]
    ),
    ("DELETE", _C + "/{id}"): Operation(
        "ContainerDelete",
        "Remove a container",
        "Containers",
        {204: None},
        query=[_bool("force", "Remove even if running"), _bool("v", "Remove anonymous volumes")],
        errors=[400, 404, 409],
    ),
    ("POST", _C + "/{id}/start"): Operation(
        "ContainerStart", "Start a container", "Containers", {204: None, 304: None}, errors=[404, 409]
    ),
    ("POST", _C + "/{id}/stop"): Operation(
        "ContainerStop",
        "Stop a container",
        "Containers",
        {204: None, 304: None},
        query=[_int("t", "Seconds to wait before killing"), _text("signal", "Signal to send first")],
        errors=[400, 404, 409],
    ),
    ("POST", _C + "/{id}/kill"): Operation(
        "ContainerKill",
        "Kill a container",
        "Containers",
        {204: None},
        query=[_text("signal", "Signal to send (default SIGKILL)")],
        errors=[400, 404, 409],
    ),
    ("POST", _C + "/{id}/restart"): Operation(
        "ContainerRestart",
        "Restart a container",
        "Containers",
        {204: None},
        query=[_int("t", "Seconds to wait before killing")],
        errors=[400, 404, 409],
    ),
    ("POST", _C + "/{id}/wait"): Operation(
        "ContainerWait",
        "Wait for a container; headers are sent at once, the body when the condition is met",
        "Containers",
        {200: WaitResponse},
        query=[
            Param(
                "condition",
                {"type": "string", "enum": [c.value for c in WaitCondition], "default": "not-running"},
                "What to wait for",
            )
        ],
        errors=[400, 404],
    ),
    ("GET", _C + "/{id}/logs"): Operation(
        "ContainerLogs",
        "Container output as Docker frames (raw bytes when the container has a TTY)",
        "Containers",
        {200: _LOG_STREAMS},
        query=[
            _bool("stdout", "Include stdout"),
            _bool("stderr", "Include stderr (stdout or stderr is required)"),
            _bool("follow", "Keep streaming (answered as a snapshot where unsupported)"),
            _bool("timestamps", "Prefix every line with its RFC 3339 time"),
            Param(
                "tail",
                {"anyOf": [{"type": "string", "enum": ["all"]}, {"type": "integer"}]},
                "Only the last N lines ('all', or negative: every line)",
            ),
            _text("since", "RFC 3339 or unix seconds (fractions allowed)"),
            _text("until", "RFC 3339 or unix seconds (fractions allowed)"),
        ],
        errors=[400, 404, 501],
    ),
    ("POST", _C + "/{id}/attach"): Operation(
        "ContainerAttach",
        "Attach to a container (101 upgrade where supported, else 501 before any upgrade)",
        "Containers",
        {101: None},
        query=[
            _bool("stream"),
            _bool("stdin"),
            _bool("stdout"),
            _bool("stderr"),
            _bool("logs"),
            _text("detachKeys", "Key sequence that detaches"),
        ],
        errors=[400, 404, 409, 501],
    ),
    ("POST", _C + "/{id}/exec"): Operation(
        "ContainerExec",
        "Create an exec instance",
        "Exec",
        {201: _ID_OBJECT},
        body=ExecConfig,
        errors=[400, 404, 409, 413, 501],
    ),
    ("GET", PREFIX + "/exec/{id}"): Operation(
        "ExecInspect", "Inspect an exec instance", "Exec", {200: ExecInstance}, errors=[404]
    ),
    ("POST", PREFIX + "/exec/{id}/start"): Operation(
        "ExecStart",
        "Start an exec instance (101 upgrade where supported, else 501)",
        "Exec",
        {101: None},
        body=_ANY_OBJECT,
        body_required=False,
        errors=[400, 404, 409, 413, 501],
    ),
    ("POST", PREFIX + "/images/pull"): Operation(
        "ImagePull",
        "Pull (or record) an image; NDJSON progress",
        "Images",
        {200: _PROGRESS},
        body=ImagePullRequest,
        errors=[400, 404, 413, 501],
    ),
    ("GET", PREFIX + "/images"): Operation(
        "ImageList",
        "List the images the backend knows: one row per image ID, with all its tags",
        "Images",
        {200: [ImageSummary]},
        cloud=False,
    ),
    ("GET", PREFIX + "/images/inspect"): Operation(
        "ImageInspect",
        "Inspect an image",
        "Images",
        {200: Image},
        query=[_text("name", "Image reference (a query parameter: names contain /)", required=True)],
        errors=[400, 404],
    ),
    ("POST", PREFIX + "/images/tag"): Operation(
        "ImageTag",
        "Tag an image",
        "Images",
        {201: None},
        query=[
            _text("name", "Image to tag", required=True),
            _text("repo", "Repository of the new tag", required=True),
            _text("tag", "Tag (default latest)"),
        ],
        errors=[400, 404, 409, 501],
    ),
    ("POST", PREFIX + "/images/load"): Operation(
        "ImageLoad",
        "Load images from a tar archive",
        "Images",
        {200: _PROGRESS},
        body=_STREAM,
        body_media_type="application/x-tar",
        errors=[400, 413, 501],
    ),
    ("POST", PREFIX + "/auth"): Operation(
        "SystemAuth",
        "Check registry credentials",
        "System",
        {200: AuthResponse},
        body=AuthRequest,
        errors=[400, 413, 501],
    ),
    ("POST", _N): Operation(
        "NetworkCreate",
        "Create a network",
        "Networks",
        {201: _ANY_OBJECT},
        body=_ANY_OBJECT,
        errors=[400, 409, 413, 501],
    ),
    ("GET", _N): Operation(
        "NetworkList",
        "List networks",
        "Networks",
        {200: {"type": "array", "items": _ANY_OBJECT}},
        query=[_filters(frozenset({"id", "name", "label", "driver", "scope", "type"}))],
        errors=[400, 501],
    ),
    ("POST", _N + "/prune"): Operation(
        "NetworkPrune",
        "Remove unused networks",
        "Networks",
        {200: _ANY_OBJECT},
        query=[_filters(frozenset({"label", "until"}))],
        errors=[400, 501],
    ),
    ("GET", _N + "/{id}"): Operation(
        "NetworkInspect", "Inspect a network", "Networks", {200: _ANY_OBJECT}, errors=[400, 404, 501]
    ),
    ("DELETE", _N + "/{id}"): Operation(
        "NetworkDelete", "Remove a network", "Networks", {204: None}, errors=[400, 404, 409, 501]
    ),
    ("POST", _N + "/{id}/{verb:connect|disconnect}"): Operation(
        "NetworkConnectDisconnect",
        "Connect a container to a network, or disconnect it",
        "Networks",
        {200: None},
        body=_ANY_OBJECT,
        errors=[400, 404, 409, 413, 501],
    ),
    ("POST", _V): Operation(
        "VolumeCreate",
        "Create a volume",
        "Volumes",
        {201: _ANY_OBJECT},
        body=_ANY_OBJECT,
        errors=[400, 409, 413, 501],
    ),
    ("GET", _V): Operation(
        "VolumeList",
        "List volumes",
        "Volumes",
        {200: _ANY_OBJECT},
        query=[_filters(frozenset({"name", "label", "driver", "dangling"}))],
        errors=[400, 501],
    ),
    ("POST", _V + "/prune"): Operation(
        "VolumePrune",
        "Remove unused volumes",
        "Volumes",
        {200: _ANY_OBJECT},
        query=[_filters(frozenset({"label", "all"}))],
        errors=[400, 501],
    ),
    ("GET", _V + "/{name}"): Operation(
        "VolumeInspect", "Inspect a volume", "Volumes", {200: _ANY_OBJECT}, errors=[404, 501]
    ),
    ("DELETE", _V + "/{name}"): Operation(
        "VolumeDelete",
        "Remove a volume",
        "Volumes",
        {204: None},
        query=[_bool("force", "Remove even if in use")],
        errors=[400, 404, 409, 501],
    ),
}

#: Statuses every route may answer: a missing or wrong token, a bug, shedding load.
_ALWAYS = (401, 500, 503)
_CLOUD = (403, 502, 503, 504)

_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad parameter or body"),
    401: ("Unauthorized", "A bearer token is configured and the request lacks it"),
    403: ("Forbidden", "The cloud refused the backend's credentials"),
    404: ("NotFound", "No such object (container, image, exec instance, ...)"),
    409: ("Conflict", "The object's state forbids the operation"),
    413: ("PayloadTooLarge", "The body is larger than server.max_body_bytes"),
    500: ("InternalError", "Anything unexpected (never a stack trace)"),
    501: ("NotImplemented", "The backend cannot do this"),
    502: ("BadGateway", "The cloud provider failed, after retries"),
    503: ("Unavailable", "The cloud provider throttled, after retries, or the backend is busy"),
    504: ("GatewayTimeout", "The cloud provider timed out, after retries"),
}

_SUCCESS_DESCRIPTIONS = {
    101: "Switching protocols (where supported)",
    200: "OK",
    201: "Created",
    204: "No content",
    304: "Not modified: already in the requested state (empty body)",
}


# ---------------------------------------------------------------------------- building the document


def _create_body(schemas: _Schemas) -> JSONObject:
    """The create body as ``models._structure_create`` reads it: Config fields at top level."""
    return {
        "description": _description(ContainerCreateRequest),
        "allOf": [
            schemas.ref(ContainerConfig),
            {
                "type": "object",
                "properties": {
                    "HostConfig": _nullable(schemas.ref(HostConfig)),
                    "NetworkingConfig": {},
                },
            },
        ],
    }


def _payload(schemas: _Schemas, payload: Any) -> JSONObject:
    """A body or response description as a schema."""
    if payload is ContainerCreateRequest:
        if "ContainerCreateRequest" not in schemas.components:
            schemas.components["ContainerCreateRequest"] = _create_body(schemas)
        return {"$ref": _SCHEMAS + "ContainerCreateRequest"}
    if isinstance(payload, list):
        return {"type": "array", "items": _payload(schemas, payload[0])}
    if isinstance(payload, type) and attrs.has(payload):
        return schemas.ref(payload)
    if isinstance(payload, dict):
        return payload
    raise TypeError(f"cannot describe {payload!r} as a schema")


_PATH_PARAMETERS = {
    (
        "containers",
        "id",
    ): "A full ID, a unique ID prefix (3+ characters) or a name, with or without a leading /",
    ("exec", "id"): "The exec instance ID",
    ("networks", "id"): "The network ID or name",
    ("networks", "verb"): "connect or disconnect",
    ("volumes", "name"): "The volume name",
}


def _openapi_path(path: str) -> tuple[str, list[JSONObject]]:
    """``/x/{id}/{verb:a|b}`` as OpenAPI ``/x/{id}/{verb}`` plus its path parameters."""
    parameters: list[JSONObject] = []

    def replace(match: re.Match[str]) -> str:
        name, _, pattern = match.group(1).partition(":")
        schema: JSONObject = {"type": "string"}
        if pattern:
            schema["enum"] = pattern.split("|")
        elif name == "id":
            schema["minLength"] = 1
        description = _PATH_PARAMETERS.get((path.removeprefix(PREFIX).split("/")[1], name), "")
        parameter: JSONObject = {"name": name, "in": "path", "required": True, "schema": schema}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
        return "{" + name + "}"

    return re.sub(r"\{([^}]+)\}", replace, path), parameters


def _query_parameter(param: Param) -> JSONObject:
    parameter: JSONObject = {"name": param.name, "in": "query", "required": param.required}
    if param.json_encoded:
        parameter["content"] = {"application/json": {"schema": param.schema}}
    else:
        parameter["schema"] = param.schema
    if param.description:
        parameter["description"] = param.description
    return parameter


def _operation(schemas: _Schemas, operation: Operation, path_params: list[JSONObject]) -> JSONObject:
    responses: JSONObject = {}
    for status, payload in operation.responses.items():
        response: JSONObject = {"description": _SUCCESS_DESCRIPTIONS[status]}
        if isinstance(payload, dict) and all("/" in key for key in payload):
            response["content"] = payload  # media types given as they are (log streams)
        elif payload is not None:
            response["content"] = {"application/json": {"schema": _payload(schemas, payload)}}
        responses[str(status)] = response
    statuses = set(operation.errors) | set(_ALWAYS) | (set(_CLOUD) if operation.cloud else set())
    if path_params:
        statuses.add(404)
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": _RESPONSES + _ERRORS[status][0]}
    result: JSONObject = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": responses,
    }
    parameters = [*path_params, *(_query_parameter(param) for param in operation.query)]
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {
            "required": operation.body_required,
            "content": {operation.body_media_type: {"schema": _payload(schemas, operation.body)}},
        }
    return result


def _error_components() -> tuple[JSONObject, JSONObject]:
    schema = {
        "type": "object",
        "description": "Every non-2xx answer (except 304) has this body and Content-Type: application/json "
        "exactly (no charset: Go clients compare the header).",
        "required": ["message"],
        "properties": {"message": {"type": "string", "minLength": 1}},
        "additionalProperties": False,
    }
    responses: JSONObject = {}
    for _status, (name, description) in sorted(_ERRORS.items()):
        response: JSONObject = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "ErrorResponse"}}},
        }
        if name == "Unavailable":
            response["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
            }
        responses[name] = response
    return schema, responses


def build_openapi() -> JSONObject:
    """The OpenAPI 3.1 document of the internal API, from the route table and the models."""
    routes = [(route.method, route.path) for route in _routes()]
    missing = [f"{method} {path}" for method, path in routes if (method, path) not in OPERATIONS]
    stale = [f"{method} {path}" for method, path in OPERATIONS if (method, path) not in routes]
    if missing or stale:
        raise LookupError(
            "sockerless.openapi.OPERATIONS does not match the server's routes: "
            f"undocumented {missing}, documented but not served {stale}"
        )
    schemas = _Schemas()
    paths: dict[str, JSONObject] = {}
    for method, route_path in routes:
        path, path_params = _openapi_path(route_path)
        item = paths.setdefault(path, {})
        item[method.lower()] = _operation(schemas, OPERATIONS[method, route_path], path_params)
    error_schema, error_responses = _error_components()
    schemas.components["ErrorResponse"] = error_schema
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "sockerless internal API",
            "version": "1",
            "description": "The contract every sockerless backend serves and every frontend calls "
            "(HTTP/1.1 + JSON on a Unix socket or TCP). Generated by python -m sockerless.openapi "
            "from sockerless/models.py and the route table in sockerless/server.py.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": error_responses,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        # The token is optional: only when server.token is configured.
        "security": [{}, {"bearer": []}],
        "tags": [
            {"name": name} for name in ("System", "Containers", "Exec", "Images", "Networks", "Volumes")
        ],
    }


def render_openapi(document: JSONObject | None = None) -> str:
    """The document as written to ``docs/openapi.json``: indented, sorted keys, a final newline."""
    return json.dumps(build_openapi() if document is None else document, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sockerless.openapi", description="Write the internal API's OpenAPI document."
    )
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, help=f"default {DEFAULT_PATH}")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render_openapi()
    path: Path = args.path
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m sockerless.openapi", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
