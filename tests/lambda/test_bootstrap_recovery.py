"""A bootstrap run recovered from its durable copy (docs/bootstrap.md) after a restart: the copy's lines
are put in CloudWatch here as the bootstrap writes them, so the join with what the stream delivered is
checked exactly, whatever the simulator runs."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from typing import Any

import pytest

from sockerless.backend import LogLine, LogsOptions
from sockerless.models import ContainerConfig, ContainerCreateRequest
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.invocations import EXIT_UNKNOWN
from sockerless_lambda.state import SENT

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"bootstrap": True, "timeout": 1, "recovery_margin": 1}


async def _running(backend: LambdaBackend, delivered: list[tuple[int, bytes]]) -> str:
    """A container whose run was sent and whose stream delivered ``delivered``, as a crash leaves it."""
    request = ContainerCreateRequest(config=ContainerConfig(image=IMAGE, cmd=["sh", "-c", "true"]))
    container_id = (await backend.create_container(request, None)).id
    record = backend.store.resolve_container(container_id)
    state = record.backend_state
    state.starts, state.run_id, state.invocation = 1, f"{container_id}-1", SENT
    record.status, record.started_at = "running", dt.datetime.now(dt.UTC)
    state.output_from = await backend.store.logs.last_position(container_id)
    await backend.store.save_state(record)
    now = dt.datetime.now(dt.UTC)
    await backend.store.logs.append(container_id, [LogLine(stream, now, data) for stream, data in delivered])
    return container_id


async def _durable_copy(backend: LambdaBackend, container_id: str, lines: list[dict[str, Any]]) -> None:
    """The lines as the bootstrap writes them to its stdout, so to the function's log group."""
    logs, group = backend.clients.logs, backend.config.log_group
    stream = f"2026/12/04/[$LATEST]{container_id[:32]}"
    await logs.create_log_stream(logGroupName=group, logStreamName=stream)
    run = f"{container_id}-1"
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": "START RequestId: r Version: $LATEST"}]
    for seq, line in enumerate(lines):
        events.append(
            {
                "timestamp": now,
                "message": json.dumps({"v": 1, "run": run, "container": container_id, "seq": seq, **line}),
            }
        )
    await logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def _data(stream: str, offset: int, data: bytes) -> dict[str, Any]:
    return {"stream": stream, "offset": offset, "data": base64.b64encode(data).decode()}


async def _exited(backend: LambdaBackend, container_id: str) -> Any:
    async def wait() -> None:
        while backend.store.resolve_container(container_id).status == "running":
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), 30)
    return backend.store.resolve_container(container_id)


async def _streams(backend: LambdaBackend, container_id: str) -> tuple[bytes, bytes]:
    logs = await backend.container_logs(container_id, LogsOptions())
    lines = [line async for line in logs.lines]
    return (
        b"".join(line.data for line in lines if line.stream == 1),
        b"".join(line.data for line in lines if line.stream == 2),
    )


async def test_the_copy_adds_only_what_the_stream_did_not_deliver(backend: LambdaBackend) -> None:
    container_id = await _running(backend, [(1, b"one\n"), (1, b"tw")])
    await _durable_copy(
        backend,
        container_id,
        [
            _data("stdout", 0, b"one\ntwo"),
            _data("stderr", 0, b"\xffbad\n"),
            _data("stdout", 7, b"\nthree"),
            {"exit": {"v": 1, "status": 5, "reason": "exited", "started": "2026-12-04T03:41:07.5Z"}},
        ],
    )
    await backend.close()
    await backend.start()
    record = await _exited(backend, container_id)
    assert (record.exit_code, record.error) == (5, "")
    assert record.started_at == dt.datetime(2026, 12, 4, 3, 41, 7, 500000, tzinfo=dt.UTC)
    assert await _streams(backend, container_id) == (b"one\ntwo\nthree", b"\xffbad\n")
    assert not record.backend_state.daemon_error


async def test_without_an_exit_line_the_outcome_is_unknown_after_the_timeout(backend: LambdaBackend) -> None:
    container_id = await _running(backend, [(2, b"partial\n")])
    await _durable_copy(backend, container_id, [_data("stderr", 0, b"partial\nmore\n")])
    await backend.close()
    await backend.start()
    record = await _exited(backend, container_id)
    assert record.exit_code == EXIT_UNKNOWN
    assert "unknown" in record.error
    assert record.backend_state.daemon_error
    assert await _streams(backend, container_id) == (b"", b"partial\nmore\n")
