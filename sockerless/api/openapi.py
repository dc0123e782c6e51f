"""The internal API as an OpenAPI 3.1 document, derived from the route descriptions and the models.

Paths, parameters, bodies and answers come from :data:`sockerless.api.routes.ROUTES`, the same
descriptions the server routes and parses with and the client calls with, so the document cannot
drift from either. Schemas come from the attrs classes in :mod:`sockerless.models` (wire names
through :func:`~sockerless.models.wire_name`, ``str_slice`` fields as a string or a list of strings,
``X | None`` as nullable, nested classes as ``$ref`` components).

``python -m sockerless.api.openapi`` writes ``docs/openapi.json`` and ``docs/internal-api.md``;
``--check`` only compares.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import attrs

from sockerless.api.params import Param
from sockerless.api.reference import render_reference
from sockerless.api.route import AnswerKind, Route
from sockerless.api.routes import ROUTES
from sockerless.models import ContainerConfig, ContainerCreateRequest, HostConfig
from sockerless.wire import converter, wire_name

__all__ = [
    "DEFAULT_PATH",
    "OPENAPI_VERSION",
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
        snake = getattr(cls, "__sockerless_snake__", False)  # the converter's rule, see models.python_names
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
    if typing.get_origin(payload) is list:
        return {"type": "array", "items": _payload(schemas, typing.get_args(payload)[0])}
    if isinstance(payload, type) and attrs.has(payload):
        return schemas.ref(payload)
    if isinstance(payload, dict):
        return payload
    raise TypeError(f"cannot describe {payload!r} as a schema")


_PATH_PARAMETERS: Mapping[str, str] = {
    "ref": "A full ID, a unique ID prefix (3+ characters) or a name, with or without a leading /",
    "exec_id": "The exec instance ID",
    "network_id": "The network ID or name",
    "name": "The volume name",
}
_LOG_STREAMS: JSONObject = {
    media: {"schema": {"type": "string", "format": "binary"}}
    for media in ("application/vnd.docker.multiplexed-stream", "application/vnd.docker.raw-stream")
}


def _path_parameters(route: Route) -> list[JSONObject]:
    parameters: list[JSONObject] = []
    for name in route.path_names:
        keyword = route.path_args[name]
        parameter: JSONObject = {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
        }
        if keyword in _PATH_PARAMETERS:
            parameter["description"] = _PATH_PARAMETERS[keyword]
        parameters.append(parameter)
    return parameters


def _query_parameter(param: Param) -> JSONObject:
    parameter: JSONObject = {"name": param.name, "in": "query", "required": param.required}
    if param.json_encoded:
        parameter["content"] = {"application/json": {"schema": param.kind.schema()}}
    else:
        parameter["schema"] = param.kind.schema()
    if param.description:
        parameter["description"] = param.description
    return parameter


def _answers(schemas: _Schemas, route: Route) -> JSONObject:
    answer = route.answer
    response: JSONObject = {"description": _SUCCESS_DESCRIPTIONS[answer.status]}
    if answer.kind is AnswerKind.LOGS:
        response["content"] = _LOG_STREAMS
    elif answer.model is not None:
        response["content"] = {"application/json": {"schema": _payload(schemas, answer.model)}}
    responses: JSONObject = {str(answer.status): response}
    for status in answer.also:
        responses[str(status)] = {"description": _SUCCESS_DESCRIPTIONS[status]}
    return responses


def _operation(schemas: _Schemas, route: Route) -> JSONObject:
    responses = _answers(schemas, route)
    statuses = set(route.errors) | set(_ALWAYS) | (set(_CLOUD) if route.cloud else set())
    if route.path_names:
        statuses.add(404)
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": _RESPONSES + _ERRORS[status][0]}
    result: JSONObject = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    parameters = [*_path_parameters(route), *(_query_parameter(param) for param in route.query)]
    if parameters:
        result["parameters"] = parameters
    if route.body is not None:
        result["requestBody"] = {
            "required": route.body.required,
            "content": {route.body.media_type: {"schema": _payload(schemas, route.body.model)}},
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
    schemas = _Schemas()
    paths: dict[str, JSONObject] = {}
    for route in ROUTES:
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(schemas, route)
    error_schema, error_responses = _error_components()
    schemas.components["ErrorResponse"] = error_schema
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "sockerless internal API",
            "version": "1",
            "description": "The contract every sockerless backend serves and every frontend calls "
            "(HTTP/1.1 + JSON on a Unix socket or TCP). Generated by python -m sockerless.api.openapi "
            "from the route descriptions in sockerless/api/ and the models in sockerless/models.py.",
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
    """Write (or with ``--check`` compare) ``docs/openapi.json`` and ``docs/internal-api.md``."""
    parser = argparse.ArgumentParser(
        prog="python -m sockerless.api.openapi",
        description="Write the internal API's OpenAPI document and its Markdown reference.",
    )
    parser.add_argument(
        "--docs", type=Path, default=DEFAULT_PATH.parent, help="the docs folder (default docs)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    documents = {
        args.docs / "openapi.json": render_openapi(),
        args.docs / "internal-api.md": render_reference(),
    }
    stale = [path for path, text in documents.items() if not path.exists() or path.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path} is out of date: run python -m sockerless.api.openapi", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(documents[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
