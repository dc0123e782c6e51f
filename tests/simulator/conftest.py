"""Shared fixtures: plain aiobotocore clients pointed at the ``lambda_simulator`` fixture."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from tests.lambda_settings import SIMULATOR_OPTIONS
from tests.simulator.helpers import IMAGE, RUNTIME_SCRIPT, client_options, wait_for_async

_names = itertools.count(1)


@pytest.fixture
def lambda_simulator_options() -> dict[str, Any]:
    """The suites' settings, Lambda's own model (``runtime_model="lambda"``, the simulator's default):
    the simulator's tests run functions as Lambda does; a file or test about something else (CloudWatch,
    quotas, states) that uses the ``direct`` model's conventions says so itself."""
    return {**SIMULATOR_OPTIONS, "runtime_model": "lambda"}


@pytest.fixture
async def lambda_client(lambda_simulator: Any) -> AsyncIterator[Any]:
    async with get_session().create_client("lambda", **client_options(lambda_simulator)) as client:
        yield client


@pytest.fixture
async def logs_client(lambda_simulator: Any) -> AsyncIterator[Any]:
    async with get_session().create_client("logs", **client_options(lambda_simulator)) as client:
        yield client


CreateFunction = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def create_function(lambda_simulator: Any, lambda_client: Any) -> CreateFunction:
    """``await create_function("echo hi; exit 3", Timeout=1, ...)``: an image function running ``sh -c``
    (in ``working_directory`` when given); CreateFunction's answer.

    New functions are ``Pending`` for a while (tests/lambda_settings.py), so it waits until the function
    has left ``Pending``, as a client of AWS must before invoking (``Active`` mostly; a state rule may
    make it ``Failed`` or another state, which the test then reads); ``active=False`` returns at once
    (tests of the Pending phase, tests that never invoke).
    """

    async def create(
        command: str | None, *, working_directory: str | None = None, active: bool = True, **options: Any
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "FunctionName": f"fn-{next(_names)}",
            "PackageType": "Image",
            "Code": {"ImageUri": IMAGE},
            "Role": lambda_simulator.role_arn,
        }
        if command is not None:
            params["ImageConfig"] = {"EntryPoint": ["sh", "-c"], "Command": [command]}
            if working_directory is not None:
                params["ImageConfig"]["WorkingDirectory"] = working_directory
        params.update(options)
        response: dict[str, Any] = await lambda_client.create_function(**params)
        if active and response["State"] == "Pending":

            async def left_pending() -> bool:
                answer = await lambda_client.get_function(FunctionName=response["FunctionName"])
                return bool(answer["Configuration"]["State"] != "Pending")

            await wait_for_async(left_pending, what=f"{response['FunctionName']} left Pending")
        return response

    return create


@pytest.fixture
def runtime_function(create_function: CreateFunction, tmp_path: Path) -> Callable[..., Awaitable[str]]:
    """``await runtime_function(*args, working_directory=None, **options)``: a function whose entrypoint
    is the custom runtime ``RUNTIME_SCRIPT`` (run by this interpreter, with ``args``); its name."""
    script = tmp_path / "runtime.py"
    script.write_text(RUNTIME_SCRIPT)

    async def create(*args: str, working_directory: str | None = None, **options: Any) -> str:
        image_config: dict[str, Any] = {"EntryPoint": [sys.executable, str(script), *args]}
        if working_directory is not None:
            image_config["WorkingDirectory"] = working_directory
        created = await create_function(None, ImageConfig=image_config, **options)
        return str(created["FunctionName"])

    return create


ReadLog = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
async def written_log(lambda_simulator: Any) -> AsyncIterator[ReadLog]:
    """Events of a log group as written, read from moto behind the simulator, which shows readers
    an event only ``log_delivery_delay`` after it was written: for tests that count what ran."""
    options = {**client_options(lambda_simulator), "endpoint_url": lambda_simulator.moto_url}
    async with get_session().create_client("logs", **options) as moto_logs:

        async def read(group: str, *, stream_prefix: str | None = None) -> list[dict[str, Any]]:
            return await _all_events(moto_logs, group, stream_prefix)

        yield read


@pytest.fixture
def read_log(logs_client: Any) -> ReadLog:
    """Events of a log group (all streams, or those starting with a prefix), oldest first.

    CloudWatch shows events only some time after they were written (the simulator's
    ``log_delivery_delay``), so this polls, bounded by ``deadline`` seconds: with ``until``, until
    one event's message contains it; without, until every run that started shows its end.
    """

    async def read(
        group: str, *, stream_prefix: str | None = None, until: str | None = None, deadline: float = 10.0
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        while True:
            events = await _all_events(logs_client, group, stream_prefix)
            if until is None and _runs_complete(events):
                return events
            if until is not None and any(until in event["message"] for event in events):
                return events
            if loop.time() > give_up:
                wanted = repr(until) if until is not None else "the end of every run"
                raise AssertionError(f"no log event showing {wanted} in {group} after {deadline} s: {events}")
            await asyncio.sleep(0.05)

    return read


async def _all_events(logs_client: Any, group: str, stream_prefix: str | None) -> list[dict[str, Any]]:
    try:
        streams = await logs_client.describe_log_streams(logGroupName=group)
    except logs_client.exceptions.ResourceNotFoundException:
        return []
    events: list[dict[str, Any]] = []
    for stream in sorted(streams["logStreams"], key=lambda item: item.get("creationTime", 0)):
        name = stream["logStreamName"]
        if stream_prefix is not None and not name.startswith(stream_prefix):
            continue
        page = await logs_client.get_log_events(logGroupName=group, logStreamName=name, startFromHead=True)
        events.extend({**event, "logStreamName": name} for event in page["events"])
    return events


def _runs_complete(events: list[dict[str, Any]]) -> bool:
    """At least one run started, and each run that started shows its REPORT (Text or JSON)."""
    started: set[str] = set()
    reported: set[str] = set()
    for event in events:
        message = event["message"]
        if message.startswith("START RequestId: "):
            started.add(message.split()[2])
        elif message.startswith("REPORT RequestId: "):
            reported.add(message.split()[2])
        elif message.startswith("{"):
            try:
                record = json.loads(message)
            except ValueError:
                continue
            kind = record.get("type") if isinstance(record, dict) else None
            request_id = (record.get("record") or {}).get("requestId") if isinstance(record, dict) else None
            if kind == "platform.start" and request_id:
                started.add(str(request_id))
            elif kind == "platform.report" and request_id:
                reported.add(str(request_id))
    return bool(started) and started <= reported
