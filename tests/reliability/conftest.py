"""Fixtures: the internal API served by the real Lambda backend on the local simulator, and a checker
for values against the schemas of ``sockerless.openapi`` (no JSON Schema library needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiobotocore.session import get_session
from aiohttp.test_utils import TestClient

from sockerless.backend import BackendRuntime
from sockerless.openapi import build_openapi
from sockerless.server import ServerOptions, create_app

#: A small body limit keeps the "too large" cases cheap to send.
MAX_BODY_BYTES = 128 * 1024
#: Lines the fuzz tests leave for the terminal summary (what ran, by input class and status).
CENSUS_KEY = pytest.StashKey[list[str]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long fuzz variants run only when asked for (``-m slow``), as the marker says."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="long variant: run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None and here in item.path.parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(CENSUS_KEY, [])
    if lines:
        terminalreporter.section("fuzz census")
        for line in lines:
            terminalreporter.write_line(line)


class LambdaApi:
    """The served app, its backend and an independent Lambda client on the same simulator."""

    def __init__(self, client: TestClient[Any, Any], backend: Any, lambda_client: Any) -> None:
        self.client = client
        self.backend = backend
        self.lambda_client = lambda_client

    async def function_names(self) -> set[str]:
        """Every function the simulator holds (what a rejected create must not change)."""
        names: set[str] = set()
        kwargs: dict[str, Any] = {}
        while True:
            page = await self.lambda_client.list_functions(**kwargs)
            names.update(function["FunctionName"] for function in page["Functions"])
            if not page.get("NextMarker"):
                return names
            kwargs["Marker"] = page["NextMarker"]


@pytest_asyncio.fixture
async def lambda_api(
    lambda_simulator: Any,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> AsyncIterator[LambdaApi]:
    # Imported here: the OpenAPI tests in this folder need no Lambda backend.
    from sockerless_lambda.backend import LambdaBackend
    from sockerless_lambda.config import LambdaConfig

    config = LambdaConfig(
        region=lambda_simulator.region,
        role_arn=lambda_simulator.role_arn,
        endpoint_url=lambda_simulator.endpoint_url,
        log_read_interval=0.25,
        max_attempts=2,
    )
    backend = LambdaBackend(config, BackendRuntime(str(tmp_path / "state.sqlite3"), "fuzz"))
    await backend.start()
    options = {
        "endpoint_url": lambda_simulator.endpoint_url,
        "region_name": lambda_simulator.region,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    try:
        async with get_session().create_client("lambda", **options) as lambda_client:
            client = await aiohttp_client(create_app(backend, ServerOptions(max_body_bytes=MAX_BODY_BYTES)))
            yield LambdaApi(client, backend, lambda_client)
    finally:
        await backend.close()


# ---------------------------------------------------------------------------- schema conformance


class SchemaChecker:
    """Checks a value against a schema of the OpenAPI document: the JSON Schema subset it uses."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def problems(self, value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
        if "$ref" in schema:
            return self.problems(value, self.resolve(schema["$ref"]), where)
        found: list[str] = []
        kinds = schema.get("type")
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if not any(_is(value, kind) for kind in kinds):
                return [f"{where}: {type(value).__name__} is not {'/'.join(kinds)}"]
        if "enum" in schema and value not in schema["enum"]:
            found.append(f"{where}: {value!r} not in {schema['enum']}")
        if isinstance(value, str) and len(value) < schema.get("minLength", 0):
            found.append(f"{where}: shorter than {schema['minLength']}")
        for sub in schema.get("allOf", ()):
            found += self.problems(value, sub, where)
        if "anyOf" in schema and all(self.problems(value, sub, where) for sub in schema["anyOf"]):
            found.append(f"{where}: matches none of anyOf")
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            found += [f"{where}: missing {key}" for key in schema.get("required", ()) if key not in value]
            for key, item in value.items():
                if key in properties:
                    found += self.problems(item, properties[key], f"{where}.{key}")
                elif schema.get("additionalProperties") is False:
                    found.append(f"{where}: unexpected {key}")
                elif isinstance(schema.get("additionalProperties"), dict):
                    found += self.problems(item, schema["additionalProperties"], f"{where}.{key}")
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                found += self.problems(item, schema["items"], f"{where}[{index}]")
        return found


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    python = {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}[kind]
    return isinstance(value, python)


@pytest.fixture(scope="session")
def openapi_document() -> dict[str, Any]:
    return build_openapi()


@pytest.fixture(scope="session")
def schema_checker(openapi_document: dict[str, Any]) -> SchemaChecker:
    return SchemaChecker(openapi_document)
