"""The OpenAPI document: up to date in docs/, complete against the route table, structurally valid
OpenAPI 3.1, and faithful to the models and to the query parameters the handlers read."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from sockerless import models
from sockerless.api import openapi
from sockerless.api.openapi import build_openapi, render_openapi
from sockerless.api.reference import render_reference
from sockerless.api.routes import ROUTES
from sockerless.api.server import create_app
from sockerless.backend import BaseBackend
from sockerless.models import Capabilities
from sockerless.wire import converter, unstructure

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REFERENCE = DOCS.parent / "internal-api.md"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
JSON_SCHEMA_TYPES = {"string", "integer", "number", "boolean", "object", "array", "null"}


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


# ---------------------------------------------------------------------------- no drift


def test_docs_files_are_the_generated_documents() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_openapi(), (
        "docs/openapi.json is out of date: run python -m sockerless.api.openapi"
    )
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        "docs/internal-api.md is out of date: run python -m sockerless.api.openapi"
    )


def test_generation_is_stable() -> None:
    assert render_openapi() == render_openapi(build_openapi())
    assert json.loads(render_openapi()) == build_openapi()


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    (tmp_path / "openapi.json").write_text("{}\n")
    assert openapi.main(["--docs", str(tmp_path), "--check"]) == 1
    assert openapi.main(["--docs", str(tmp_path)]) == 0
    assert openapi.main(["--docs", str(tmp_path), "--check"]) == 0
    assert (tmp_path / "openapi.json").read_text() == render_openapi()
    assert (tmp_path / "internal-api.md").read_text() == render_reference()


def test_the_server_serves_exactly_the_described_routes() -> None:
    app = create_app(EverythingBackend())
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert served == {(route.method, route.full_path) for route in ROUTES}
    documented = {(method.upper(), path) for path, method, _ in operations(build_openapi())}
    assert documented == served


# ---------------------------------------------------------------------------- valid OpenAPI 3.1


def test_document_has_the_required_top_level_fields() -> None:
    document = build_openapi()
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    assert set(document) <= {
        "openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks",
        "components", "security", "tags", "externalDocs",
    }  # fmt: skip


def test_every_ref_resolves() -> None:
    document = build_openapi()
    refs = [node["$ref"] for _, node in walk(document) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        resolve(document, ref)


def test_every_component_is_used() -> None:
    document = build_openapi()
    text = json.dumps(document)
    for kind in ("schemas", "responses"):
        for name in document["components"][kind]:
            assert f'"#/components/{kind}/{name}"' in text, f"{kind}/{name} is never referred to"


def test_operation_ids_are_unique_and_tags_declared() -> None:
    document = build_openapi()
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    declared = {tag["name"] for tag in document["tags"]}
    for path, method, operation in operations(document):
        assert set(operation["tags"]) <= declared, f"{method} {path}"
        assert operation["summary"]


def test_path_templates_match_their_path_parameters() -> None:
    document = build_openapi()
    for path, method, operation in operations(document):
        assert path.startswith("/internal/v1/")
        templated = re.findall(r"\{([^}]+)\}", path)
        parameters = operation.get("parameters", [])
        in_path = [p["name"] for p in parameters if p["in"] == "path"]
        assert sorted(in_path) == sorted(templated), f"{method} {path}"
        assert all(p["required"] is True for p in parameters if p["in"] == "path")
        keys = [(p["name"], p["in"]) for p in parameters]
        assert len(keys) == len(set(keys)), f"duplicate parameter in {method} {path}"
        for parameter in parameters:
            assert parameter["in"] in {"path", "query", "header", "cookie"}
            assert ("schema" in parameter) != ("content" in parameter), parameter["name"]
            if "content" in parameter:
                assert len(parameter["content"]) == 1


def test_responses_have_status_codes_descriptions_and_media_types() -> None:
    document = build_openapi()
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert any(code.startswith("2") or code == "101" for code in responses), f"{method} {path}"
        for code, response in responses.items():
            assert re.fullmatch(r"[1-5]\d\d", code), code
            if "$ref" in response:
                response = resolve(document, response["$ref"])
            assert response["description"]
            for media_type in response.get("content", {}):
                assert re.fullmatch(r"[\w.+-]+/[\w.+-]+", media_type), media_type
        if "requestBody" in operation:
            assert operation["requestBody"]["content"]
        assert method != "get" or "requestBody" not in operation


def test_errors_are_a_message_in_application_json() -> None:
    document = build_openapi()
    error_schema = document["components"]["schemas"]["ErrorResponse"]
    assert error_schema["required"] == ["message"]
    for path, method, operation in operations(document):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            response = resolve(document, response["$ref"])
            assert list(response["content"]) == ["application/json"], f"{method} {path} {code}"
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
            assert {"401", "500", "503"} <= set(operation["responses"])


def test_schemas_use_only_json_schema_keywords_with_valid_values() -> None:
    document = build_openapi()
    keywords = {
        "type", "properties", "required", "additionalProperties", "items", "enum", "anyOf", "allOf",
        "oneOf", "$ref", "description", "default", "minLength", "format",
    }  # fmt: skip
    schemas = [schema for _, schema in _schemas(document)]
    assert len(schemas) > 100
    for schema in schemas:
        assert set(schema) <= keywords, set(schema) - keywords
        kinds = schema.get("type", [])
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            assert kind in JSON_SCHEMA_TYPES
        if "required" in schema:
            assert set(schema["required"]) <= set(schema.get("properties", {}))
        if "enum" in schema:
            assert schema["enum"] and len(schema["enum"]) == len(set(map(json.dumps, schema["enum"])))


def _schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object: components, parameters, bodies, responses and everything nested in them."""

    def nested(schema: dict[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        yield where, schema
        for key in ("properties",):
            for name, sub in schema.get(key, {}).items():
                yield from nested(sub, f"{where}/{key}/{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from nested(schema[key], f"{where}/{key}")
        for key in ("anyOf", "allOf", "oneOf"):
            for index, sub in enumerate(schema.get(key, [])):
                yield from nested(sub, f"{where}/{key}/{index}")

    for where, node in walk(document):
        if where.startswith("#/components/schemas/") and where.count("/") == 3:
            yield from nested(node, where)
        elif isinstance(node, dict) and isinstance(node.get("schema"), dict):
            yield from nested(node["schema"], where + "/schema")


def test_the_standard_validator_accepts_the_document() -> None:
    """openapi-spec-validator, the maintained validator of OpenAPI documents (a test dependency)."""
    validate(build_openapi())


# ---------------------------------------------------------------------------- faithful to the models


def _model_classes(document: dict[str, Any]) -> list[type[Any]]:
    classes = [getattr(models, name, None) for name in document["components"]["schemas"]]
    return [cls for cls in classes if cls is not None and attrs.has(cls)]


def _sample(cls: type[Any]) -> Any:
    """An instance with every required field filled, plus one value in each optional field."""
    hints = typing.get_type_hints(cls)
    values = {}
    for attribute in attrs.fields(cls):
        if attribute.default is attrs.NOTHING or attribute.default is None:
            values[attribute.name] = _value(hints[attribute.name])
    return cls(**values)


def _value(tp: Any) -> Any:
    args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _value(args[0])
    if tp is Any:
        return {"any": ["json"]}
    if origin is list:
        return [_value(args[0])]
    if origin is dict:
        return {"key": _value(args[1])}
    if attrs.has(tp):
        return _sample(tp)
    return {str: "text", int: 7, bool: True, float: 1.5}[tp]


def test_component_properties_are_the_wire_names_the_converter_writes() -> None:
    document = build_openapi()
    classes = _model_classes(document)
    assert len(classes) >= 20
    for cls in classes:
        schema = document["components"]["schemas"][cls.__name__]
        if "allOf" in schema:
            continue  # the flattened create body, checked below
        written = unstructure(_sample(cls))
        assert set(written) == set(schema["properties"]), cls.__name__


def test_model_samples_conform_to_their_schemas(schema_checker: Any) -> None:
    document = build_openapi()
    for cls in _model_classes(document):
        if cls is models.ContainerCreateRequest:
            continue
        schema = {"$ref": f"#/components/schemas/{cls.__name__}"}
        assert schema_checker.problems(unstructure(_sample(cls)), schema) == [], cls.__name__
        assert schema_checker.problems(unstructure(cls(**_required_only(cls))), schema) == []


def _required_only(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {a.name: _value(hints[a.name]) for a in attrs.fields(cls) if a.default is attrs.NOTHING}


def test_the_create_body_schema_accepts_what_the_converter_reads(schema_checker: Any) -> None:
    body = {
        **unstructure(_sample(models.ContainerConfig)),
        "Cmd": "echo hi",
        "HostConfig": unstructure(_sample(models.HostConfig)),
        "NetworkingConfig": {"EndpointsConfig": {}},
    }
    schema = {"$ref": "#/components/schemas/ContainerCreateRequest"}
    assert schema_checker.problems(body, schema) == []
    parsed = converter.structure(body, models.ContainerCreateRequest)
    assert parsed.config.cmd == ["echo hi"]
    assert schema_checker.problems({**body, "Env": "A=1"}, schema)
    assert schema_checker.problems({**body, "HostConfig": []}, schema)


def test_str_slice_and_optional_fields() -> None:
    config = build_openapi()["components"]["schemas"]["ContainerConfig"]["properties"]
    assert config["Cmd"]["type"] == ["string", "array", "null"]
    assert config["Cmd"]["items"] == {"type": "string"}
    assert config["StopTimeout"]["type"] == ["integer", "null"]
    assert config["Image"] == {"type": "string", "default": ""}
    host = build_openapi()["components"]["schemas"]["HostConfig"]["properties"]
    assert host["LogConfig"]["$ref"] == "#/components/schemas/LogConfig"
    assert "UTSMode" in host and "NanoCpus" in host


# ---------------------------------------------------------------------------- faithful to the handlers


class EverythingBackend(BaseBackend):
    """Claims every capability so no route stops at the capability gate before reading its query."""

    name = "everything"
    capabilities: ClassVar[Capabilities] = Capabilities(
        exec=True,
        attach=True,
        logs=True,
        volumes=True,
        networks=True,
        image_pull=True,
        image_load=True,
        rename=True,
        events=True,
    )


async def test_every_query_parameter_a_handler_reads_is_documented(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: set[str] = set()

    class Recording:
        def __init__(self, query: Any) -> None:
            self._query = query

        def get(self, name: str, default: Any = None) -> Any:
            read.add(name)
            return self._query.get(name, default)

        def __getitem__(self, name: str) -> Any:
            read.add(name)
            return self._query[name]

        def __contains__(self, name: object) -> bool:
            read.add(str(name))
            return name in self._query

    original = web.BaseRequest.query
    monkeypatch.setattr(
        web.BaseRequest, "query", property(lambda request: Recording(original.__get__(request)))
    )
    client = await aiohttp_client(create_app(EverythingBackend()))
    document = build_openapi()
    for path, method, operation in operations(document):
        concrete = path.replace("{id}", "abc").replace("{name}", "abc").replace("{verb}", "connect")
        read.clear()
        # "stdout" keeps logs past its "choose a stream" check; "name"/"repo" keep tag past its check.
        query = {"stdout": "1", "name": "alpine", "repo": "x"}
        async with client.request(method.upper(), concrete, params=query, json={}) as response:
            await response.read()
        documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert read <= documented, f"{method.upper()} {path} reads undocumented {read - documented}"
