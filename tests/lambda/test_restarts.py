"""Containers whose functions vanished: a restart keeps them, a start makes the function again, and a
run whose function is gone is settled at once instead of after the function timeout.

The embedded simulator (``--simulate``) forgets every function when it stops; deleting the function
through the simulator's own Lambda API is the same loss, seen from the backend.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sockerless.backend import LogsOptions
from sockerless.models import ContainerConfig, ContainerCreateRequest
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.bootstrap.payload import run_id
from sockerless_lambda.state import SENT

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"


async def _create(backend: LambdaBackend, command: str, name: str | None = None) -> str:
    request = ContainerCreateRequest(config=ContainerConfig(image=IMAGE, cmd=["sh", "-c", command]))
    return (await backend.create_container(request, name)).id


async def _delete_function(backend: LambdaBackend, container_id: str) -> None:
    name = backend.store.resolve_container(container_id).backend_state.function_name
    await backend.clients.control.delete_function(FunctionName=name)


async def _exited(backend: LambdaBackend, container_id: str, poll: Any, timeout: float = 15) -> Any:
    async def exited() -> bool:
        return backend.store.resolve_container(container_id).status == "exited"

    await poll(exited, timeout=timeout)
    return backend.store.resolve_container(container_id)


async def _output(backend: LambdaBackend, container_id: str) -> bytes:
    logs = await backend.container_logs(container_id, LogsOptions())
    return b"".join([line.data async for line in logs.lines])


def _calls(simulator: Any) -> dict[str, int]:
    return dict(simulator.stats.snapshot()["calls"])


async def test_a_created_container_survives_a_restart_that_lost_its_function_and_starts(
    backend: LambdaBackend, poll: Any
) -> None:
    container_id = await _create(backend, "echo made again; exit 5", name="kept")
    await _delete_function(backend, container_id)  # what a restart of the embedded simulator does
    await backend.close()
    await backend.start()
    record = backend.store.resolve_container("kept")
    assert (record.id, record.status) == (container_id, "created")

    await backend.start_container("kept")
    record = await _exited(backend, container_id, poll)
    assert (record.exit_code, record.error) == (5, "")
    assert await _output(backend, container_id) == b"made again\n"


async def test_start_creates_a_deleted_function_again_and_the_usual_start_calls_only_invoke(
    backend: LambdaBackend, lambda_simulator: Any, poll: Any
) -> None:
    container_id = await _create(backend, "echo run; exit 3")
    await backend.start_container(container_id)  # the first start waits out the new function's Pending
    assert (await _exited(backend, container_id, poll)).exit_code == 3
    before = _calls(lambda_simulator)
    await backend.start_container(container_id)
    assert (await _exited(backend, container_id, poll)).exit_code == 3
    after = _calls(lambda_simulator)
    usual = {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}
    assert usual == {"lambda:InvokeWithResponseStream": 1}  # the function exists: no other call

    await _delete_function(backend, container_id)
    before = _calls(lambda_simulator)
    await backend.start_container(container_id)
    record = await _exited(backend, container_id, poll)
    assert (record.exit_code, record.error) == (3, "")
    assert await _output(backend, container_id) == b"run\nrun\nrun\n"
    after = _calls(lambda_simulator)
    assert after["lambda:CreateFunction"] - before.get("lambda:CreateFunction", 0) == 1
    functions = (await backend.clients.control.list_functions())["Functions"]
    assert [f["FunctionName"] for f in functions] == [record.backend_state.function_name]
    assert record.backend_state.function_arn == functions[0]["FunctionArn"]


async def test_a_run_whose_function_vanished_is_settled_at_once_after_a_restart(
    backend: LambdaBackend, poll: Any
) -> None:
    container_id = await _create(backend, "sleep 1")
    record = backend.store.resolve_container(container_id)
    record.status, record.started_at = "running", dt.datetime.now(dt.UTC)
    record.backend_state.invocation = SENT  # it may have run: only its logs could tell how
    record.backend_state.starts, record.backend_state.run_id = 1, run_id(container_id, 1)
    await backend.store.save_state(record)
    await _delete_function(backend, container_id)
    await backend.close()
    await backend.start()
    # The function timeout is 900 s: without the function nor any END line, nothing is worth waiting for.
    record = await _exited(backend, container_id, poll, timeout=15)
    assert record.exit_code == 255
    assert "unknown" in record.error and "no longer exists" in record.error
    assert await _output(backend, container_id) == b""


async def test_a_function_created_again_gets_an_image_uri_lambda_accepts(
    backend: LambdaBackend, poll: Any
) -> None:
    bare = IMAGE.rsplit(":", 1)[0]  # no tag: Lambda would refuse it as it is
    request = ContainerCreateRequest(config=ContainerConfig(image=bare, cmd=["true"]))
    container_id = (await backend.create_container(request, None)).id
    await _delete_function(backend, container_id)
    await backend.start_container(container_id)
    assert (await _exited(backend, container_id, poll)).exit_code == 0
    name = backend.store.resolve_container(container_id).backend_state.function_name
    function = await backend.clients.control.get_function(FunctionName=name)
    assert function["Code"]["ImageUri"] == bare + ":latest"


async def test_a_function_created_again_from_a_local_tag_gets_the_image_it_pointed_at(
    backend: LambdaBackend, poll: Any
) -> None:
    await _create(backend, "true")  # records IMAGE
    await backend.tag_image(IMAGE, "mine", "v1")  # a name the registry does not know
    request = ContainerCreateRequest(config=ContainerConfig(image="mine:v1", cmd=["true"]))
    container_id = (await backend.create_container(request, None)).id
    await _delete_function(backend, container_id)
    await backend.start_container(container_id)
    assert (await _exited(backend, container_id, poll)).exit_code == 0
    name = backend.store.resolve_container(container_id).backend_state.function_name
    function = await backend.clients.control.get_function(FunctionName=name)
    assert function["Code"]["ImageUri"] == IMAGE
