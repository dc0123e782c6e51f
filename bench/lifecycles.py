"""One container lifecycle (``echo hi``: create, start, wait, logs, remove), three ways, each timing its
phases: through the internal API, on a backend object in this process, and as bare AWS calls."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

from sockerless.api.client import BackendClient
from sockerless.backend import BackendRuntime, LogsOptions
from sockerless.models import ContainerCreateRequest, WaitCondition
from sockerless.streams import decode_frames
from sockerless.wire import structure
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.config import LambdaConfig

from .aws import LambdaClients, function_params
from .common import BACKEND_SETTINGS, IMAGE
from .processes import FAKE_CREDENTIAL, Simulator

__all__ = [
    "COMMAND",
    "Phases",
    "backend_lifecycle",
    "direct_lifecycle",
    "inprocess_backend",
    "inprocess_lifecycle",
]

COMMAND = ["echo", "hi"]
OUTPUT = b"hi\n"
#: Seconds per phase of a lifecycle, by phase name, over many lifecycles.
Phases = defaultdict[str, list[float]]


class _Laps:
    """Times consecutive phases of one lifecycle into ``phases``."""

    def __init__(self, phases: Phases) -> None:
        self._phases = phases
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self._phases[phase].append(now - self._last)
        self._last = now


def _check(variant: str, status_code: int, output: bytes) -> None:
    if status_code != 0 or output != OUTPUT:
        raise AssertionError(f"{variant} lifecycle: exit {status_code}, output {output!r}")


async def backend_lifecycle(client: BackendClient, phases: Phases) -> None:
    """Through the internal API, as the Docker frontend calls it (``BackendClient``)."""
    lap = _Laps(phases)
    created = await client.create_container({"Image": IMAGE, "Cmd": COMMAND}, None)
    lap("create")
    await client.start_container(created.id)
    lap("start")
    async with client.wait_container(created.id, WaitCondition.NOT_RUNNING) as pending:
        result = await pending.result()
    lap("wait")
    data = b""
    async with client.container_logs(created.id, LogsOptions()) as stream:
        async for chunk in stream.chunks():
            data += chunk
    lap("logs")
    await client.remove_container(created.id)
    lap("remove")
    frames, rest = decode_frames(data)
    _check("backend", result.status_code, b"".join(payload for _, payload in frames) + rest)


async def inprocess_lifecycle(backend: LambdaBackend, phases: Phases) -> None:
    """The same calls on a ``LambdaBackend`` object in this process: no HTTP, no access lines."""
    lap = _Laps(phases)
    request = structure({"Image": IMAGE, "Cmd": COMMAND}, ContainerCreateRequest)
    created = await backend.create_container(request, None)
    lap("create")
    await backend.start_container(created.id)
    lap("start")
    result = await (await backend.wait_container(created.id, WaitCondition.NOT_RUNNING))
    lap("wait")
    logs = await backend.container_logs(created.id, LogsOptions())
    output = b"".join([line.data async for line in logs.lines])
    lap("logs")
    await backend.remove_container(created.id, force=False, volumes=False)
    lap("remove")
    _check("in-process", result.status_code, output)


@contextlib.asynccontextmanager
async def inprocess_backend(workdir: str, sim: Simulator) -> AsyncIterator[LambdaBackend]:
    """A ``LambdaBackend`` in this process on the simulator, configured as ``serve`` configures it."""
    saved = {key: os.environ.get(key) for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=FAKE_CREDENTIAL, AWS_SECRET_ACCESS_KEY=FAKE_CREDENTIAL)
    config = LambdaConfig(
        region="us-east-1", role_arn=sim.role_arn, endpoint_url=sim.endpoint_url, **BACKEND_SETTINGS
    )
    backend = LambdaBackend(config, BackendRuntime(os.path.join(workdir, "inprocess.sqlite3"), "bench"))
    try:
        await backend.start()
        yield backend
    finally:
        await backend.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def direct_lifecycle(lam: LambdaClients, role_arn: str, phases: Phases) -> None:
    """The bare AWS calls such a lifecycle needs: CreateFunction (GetFunctionConfiguration only while
    it is not Active), Invoke with ``LogType=Tail``, DeleteFunction."""
    name = f"direct-{uuid.uuid4().hex[:24]}"
    lap = _Laps(phases)
    created = await lam.control.create_function(**function_params(name, role_arn, COMMAND))
    state = created.get("State", "Pending")
    while state != "Active":
        await asyncio.sleep(0.05)
        state = (await lam.control.get_function_configuration(FunctionName=name)).get("State", "Active")
    lap("create")
    response = await lam.invoke.invoke(FunctionName=name, LogType="Tail")
    await response["Payload"].read()
    tail = base64.b64decode(response.get("LogResult", "")).decode()
    lap("invoke")
    await lam.control.delete_function(FunctionName=name)
    lap("delete")
    if response.get("FunctionError") or "hi\n" not in tail:
        raise AssertionError(f"direct lifecycle failed: {response.get('FunctionError')} {tail!r}")
