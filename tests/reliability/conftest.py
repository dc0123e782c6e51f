"""Fixtures: the internal API served by the real Lambda backend on the local simulator, and a checker
for values against the schemas of the generated OpenAPI document (with openapi-schema-validator)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiobotocore.session import get_session
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS31Validator

from sockerless.api.openapi import build_openapi
from sockerless.api.server import create_app
from sockerless.backend import BackendRuntime
from tests.lambda_settings import simulator_client_options, simulator_config
from tests.reliability.processes import BackendProcess, SimulatorProcess
from tests.teardown import each_ended

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


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory for sockets: Unix socket paths must stay under 108 bytes, pytest's are long."""
    path = tempfile.mkdtemp(prefix="skr-", dir="/tmp")
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest_asyncio.fixture
async def simulator(tmp_path: Path) -> Any:
    """A simulator process (tests/reliability/processes.py), killed at the end."""
    started = await SimulatorProcess(tmp_path / "simulator.log").start()
    try:
        yield started
    finally:
        await started.kill()


@pytest_asyncio.fixture
async def backends() -> Any:
    """Every backend process a test starts; killed at the end whatever happened."""
    async with each_ended(BackendProcess.kill) as started:
        yield started


@pytest_asyncio.fixture
async def lambda_api(
    lambda_simulator: Any,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> AsyncIterator[LambdaApi]:
    # Imported here: the OpenAPI tests in this folder need no Lambda backend.
    from sockerless_lambda.backend import LambdaBackend

    # A shared function goes with its last container: a removal restores the functions as they were.
    config = simulator_config(lambda_simulator, function_idle_seconds=0)
    backend = LambdaBackend(config, BackendRuntime(str(tmp_path / "state.sqlite3"), "fuzz"))
    await backend.start()
    options = simulator_client_options(lambda_simulator)
    try:
        async with get_session().create_client("lambda", **options) as lambda_client:
            client = await aiohttp_client(create_app(backend, max_body_bytes=MAX_BODY_BYTES))
            yield LambdaApi(client, backend, lambda_client)
    finally:
        await backend.close()


# ---------------------------------------------------------------------------- schema conformance


class SchemaChecker:
    """Checks a value against a schema of the OpenAPI document (OpenAPI 3.1's JSON Schema dialect)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def problems(self, value: Any, schema: dict[str, Any]) -> list[str]:
        # The document's components travel with the schema, so its "#/components/..." refs resolve.
        root = {**schema, "components": self.document["components"]}
        return [
            f"$.{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
            for error in OAS31Validator(root).iter_errors(value)
        ]


@pytest.fixture(scope="session")
def openapi_document() -> dict[str, Any]:
    return build_openapi()


@pytest.fixture(scope="session")
def schema_checker(openapi_document: dict[str, Any]) -> SchemaChecker:
    return SchemaChecker(openapi_document)
