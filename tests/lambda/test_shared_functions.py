"""One warm function per image configuration: containers on the bootstrap share the function of their
key; the first create of a key makes it (one CreateFunction however many at once), later ones make no
control-plane call; the last removal leaves it idle for ``lambda.function_idle_seconds``; containers
off the bootstrap keep a function of their own; stores written before keep working."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import pytest

from sockerless.backend import BackendRuntime
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.shared_functions import FUNCTION_KEY_TAG, FUNCTION_KIND
from tests.lambda_settings import simulator_config

API = "/internal/v1"
INSTANCE = "test-instance"  # the backend fixture's (tests/lambda/conftest.py)
Api = Any  # the api fixture's class ("lambda" cannot be imported)
#: Lambda's data-plane operations: every other ``lambda:`` call is a control-plane call.
DATA_PLANE = {"lambda:Invoke", "lambda:InvokeWithResponseStream"}
OTHER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/other:latest"


def lambda_calls(simulator: Any) -> dict[str, int]:
    calls = simulator.stats.snapshot()["calls"]
    return {name: count for name, count in calls.items() if name.startswith("lambda:")}


def control_calls(simulator: Any) -> dict[str, int]:
    return {name: count for name, count in lambda_calls(simulator).items() if name not in DATA_PLANE}


async def function_names(backend: LambdaBackend) -> set[str]:
    listed = await backend.clients.control.list_functions()
    return {function["FunctionName"] for function in listed["Functions"]}


def function_of(backend: LambdaBackend, container_id: str) -> str:
    record = backend.store.get_container(container_id)
    assert record is not None
    return record.backend_state.function_name


async def remove(api: Api, ref: str) -> None:
    response = await api.client.delete(f"{API}/containers/{ref}")
    assert response.status == 204, await response.text()


class Clock:
    """Wall-clock seconds the shared functions see, moved by the test (no sleeping to reach a time)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def clocked(backend: LambdaBackend) -> Clock:
    clock = Clock()
    backend._service.functions.clock = clock  # the test moves time instead of waiting for it
    return clock


# ---------------------------------------------------------------------------- one function per key


async def test_100_concurrent_runs_of_a_new_key_make_one_create_and_100_more_no_control_call(
    api: Api, lambda_simulator: Any
) -> None:
    lambda_simulator.stats.reset()
    first = await asyncio.gather(*(api.run(f"echo first {i}") for i in range(100)))
    assert [result for _, result in first] == [{"StatusCode": 0}] * 100
    assert lambda_calls(lambda_simulator)["lambda:CreateFunction"] == 1
    assert len({function_of(api.backend, container_id) for container_id, _ in first}) == 1

    lambda_simulator.stats.reset()
    second = await asyncio.gather(*(api.run(f"echo second {i}") for i in range(100)))
    assert [result for _, result in second] == [{"StatusCode": 0}] * 100
    assert control_calls(lambda_simulator) == {}
    assert lambda_calls(lambda_simulator) == {"lambda:InvokeWithResponseStream": 100}
    assert await api.output(second[7][0]) == "second 7\n"


async def test_a_container_of_a_known_key_is_created_and_started_without_a_control_plane_call(
    api: Api, lambda_simulator: Any
) -> None:
    await api.run("true")
    lambda_simulator.stats.reset()
    container_id = await api.create(Cmd=["echo", "warm"])
    assert lambda_calls(lambda_simulator) == {}  # create: a store write only
    _, result = await api.run("echo warm")
    assert result == {"StatusCode": 0}
    assert lambda_calls(lambda_simulator) == {"lambda:InvokeWithResponseStream": 1}
    assert container_id


async def test_two_images_make_two_functions_and_another_memory_a_third(api: Api) -> None:
    a1 = await api.create(Cmd=["true"])
    a2 = await api.create(Cmd=["echo", "other command, same function"], Env=["X=1"], WorkingDir="/tmp")
    b = await api.create(Image=OTHER_IMAGE, Cmd=["true"])
    a_small = await api.create(Cmd=["true"], HostConfig={"Memory": 256 * 1024 * 1024})
    names = {ref: function_of(api.backend, ref) for ref in (a1, a2, b, a_small)}
    assert names[a1] == names[a2]
    assert len({names[a1], names[b], names[a_small]}) == 3
    assert await function_names(api.backend) == set(names.values())
    small = await api.backend.clients.control.get_function(FunctionName=names[a_small])
    assert small["Configuration"]["MemorySize"] == 256


async def test_a_shared_function_is_tagged_with_its_key_not_a_container(api: Api) -> None:
    container_id = await api.create("tagged", Cmd=["true"], Labels={"team": "data"})
    record = api.backend.store.get_container(container_id)
    assert record is not None
    function = await api.backend.clients.control.get_function(FunctionName=record.backend_state.function_name)
    key = record.backend_state.function_key
    assert function["Tags"] == {
        "sockerless:managed": "true",
        "sockerless:instance": INSTANCE,
        FUNCTION_KEY_TAG: key,
    }
    assert record.backend_state.function_name == "skls-" + key[:24]


async def test_two_containers_of_one_function_running_at_once_get_only_their_own_output(api: Api) -> None:
    script = "for i in 1 2 3 4 5; do echo {name}$i; echo {name}-err$i >&2; sleep 0.05; done; exit {code}"
    (a, a_result), (b, b_result) = await asyncio.gather(
        api.run(script.format(name="a", code=3)), api.run(script.format(name="b", code=4))
    )
    assert function_of(api.backend, a) == function_of(api.backend, b)
    assert (a_result, b_result) == ({"StatusCode": 3}, {"StatusCode": 4})
    assert await api.output(a, stderr="0") == "".join(f"a{i}\n" for i in range(1, 6))
    assert await api.output(a, stdout="0") == "".join(f"a-err{i}\n" for i in range(1, 6))
    assert await api.output(b, stderr="0") == "".join(f"b{i}\n" for i in range(1, 6))


# ---------------------------------------------------------------------------- idle functions


async def test_the_function_outlives_its_last_container_until_the_idle_time_passed(
    api: Api, lambda_simulator: Any
) -> None:
    clock = clocked(api.backend)
    container_id, _ = await api.run("true")
    name = function_of(api.backend, container_id)
    await remove(api, container_id)
    await api.backend.cleanups_settled()
    assert name in await function_names(api.backend)  # idle, not deleted: default 600 s
    clock.now += 599
    await api.backend.cleanups_settled()
    assert name in await function_names(api.backend)
    clock.now += 2
    await api.backend.cleanups_settled()
    assert name not in await function_names(api.backend)
    assert api.backend.store.objects.all(FUNCTION_KIND) == {}


@pytest.mark.parametrize("config_overrides", [{"function_idle_seconds": 0.2}])
async def test_the_background_sweep_deletes_an_idle_function_when_due(api: Api, poll: Any) -> None:
    container_id, _ = await api.run("true")
    name = function_of(api.backend, container_id)
    await remove(api, container_id)

    async def deleted() -> bool:
        return name not in await function_names(api.backend)

    await poll(deleted, timeout=15)


@pytest.mark.parametrize("config_overrides", [{"function_idle_seconds": 0}])
async def test_idle_time_0_deletes_the_function_with_its_last_container(
    api: Api, lambda_simulator: Any
) -> None:
    first, _ = await api.run("true")
    second, _ = await api.run("true")
    name = function_of(api.backend, first)
    await remove(api, first)
    await api.backend.cleanups_settled()
    assert name in await function_names(api.backend)  # the second container still uses it
    await remove(api, second)
    await api.backend.cleanups_settled()
    assert name not in await function_names(api.backend)
    assert lambda_calls(lambda_simulator)["lambda:DeleteFunction"] == 1


async def test_a_new_container_revives_an_idle_function_which_is_then_not_deleted(
    api: Api, lambda_simulator: Any
) -> None:
    clock = clocked(api.backend)
    old, _ = await api.run("true")
    name = function_of(api.backend, old)
    await remove(api, old)
    clock.now += 300
    lambda_simulator.stats.reset()
    new, result = await api.run("echo revived")
    assert result == {"StatusCode": 0}
    assert function_of(api.backend, new) == name
    clock.now += 10_000  # long past the first idle time: the function is in use again
    await api.backend.cleanups_settled()
    assert control_calls(lambda_simulator) == {}  # no CreateFunction, no DeleteFunction
    assert name in await function_names(api.backend)


async def test_a_function_deleted_behind_our_back_is_made_again_once_for_all_its_containers(
    api: Api, lambda_simulator: Any
) -> None:
    containers = [await api.create(Cmd=["echo", str(i)]) for i in range(10)]
    _, result = await api.run("true")
    assert result == {"StatusCode": 0}
    name = function_of(api.backend, containers[0])
    await api.backend.clients.control.delete_function(FunctionName=name)
    lambda_simulator.stats.reset()
    waits = [asyncio.create_task(api.wait(c, "next-exit")) for c in containers]
    await asyncio.gather(*(api.start(c) for c in containers))
    assert await asyncio.wait_for(asyncio.gather(*waits), 60) == [{"StatusCode": 0}] * 10
    assert lambda_calls(lambda_simulator)["lambda:CreateFunction"] == 1


# ---------------------------------------------------------------------------- a function per container


@pytest.mark.cloudwatch_path
async def test_containers_off_the_bootstrap_keep_a_function_each_deleted_with_them(api: Api) -> None:
    first, result = await api.run("echo own")
    second = await api.create(Cmd=["true"])
    assert result == {"StatusCode": 0}
    assert function_of(api.backend, first) == f"skls-{first[:24]}"
    assert function_of(api.backend, second) == f"skls-{second[:24]}"
    await remove(api, first)
    await api.backend.cleanups_settled()
    assert await function_names(api.backend) == {f"skls-{second[:24]}"}


async def test_a_store_from_before_shared_functions_keeps_its_containers_own_functions(
    lambda_simulator: Any, state_path: str
) -> None:
    """A v4 store (before backend_objects) with a bootstrap container named after its own function:
    migrated, it starts on that function (made again when missing) and deletes it when removed."""
    backend = LambdaBackend(simulator_config(lambda_simulator), BackendRuntime(state_path, INSTANCE))
    await backend.start()
    try:
        created = await backend.create_container(
            _request(["echo", "old"]),
            "old",
        )
    finally:
        await backend.close()
    old_function = f"skls-{created.id[:24]}"
    raw = sqlite3.connect(state_path)
    try:
        (document,) = raw.execute("SELECT backend FROM containers WHERE id = ?", (created.id,)).fetchone()
        state = json.loads(document)
        state.pop("function_key")
        state.update(function_name=old_function, function_arn="", function_state="Active")
        raw.execute("UPDATE containers SET backend = ? WHERE id = ?", (json.dumps(state), created.id))
        raw.execute("DROP TABLE backend_objects")
        raw.execute("PRAGMA user_version = 4")
        raw.commit()
    finally:
        raw.close()

    backend = LambdaBackend(
        simulator_config(lambda_simulator, function_idle_seconds=0), BackendRuntime(state_path, INSTANCE)
    )
    await backend.start()
    try:
        # The shared function its create made is unknown to the edited store: an orphan, not ours to test.
        for name in await function_names(backend):
            await backend.clients.control.delete_function(FunctionName=name)
        record = backend.store.get_container(created.id)
        assert record is not None and record.backend_state.function_key == ""
        await backend.start_container(created.id)
        assert (await (await backend.wait_container(created.id, "not-running"))).status_code == 0
        assert await function_names(backend) == {old_function}  # made again under its own name
        await backend.remove_container(created.id, force=False, volumes=False)
        await backend.cleanups_settled()
        assert await function_names(backend) == set()
    finally:
        await backend.close()


def _request(cmd: list[str]) -> Any:
    from sockerless.models import ContainerConfig, ContainerCreateRequest

    return ContainerCreateRequest(
        config=ContainerConfig(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest", cmd=cmd)
    )


async def test_an_idle_function_is_no_orphan_and_an_unknown_shared_one_is_reported_with_its_key(
    api: Api,
) -> None:
    from sockerless_lambda.reconcile import find_orphans

    container_id, _ = await api.run("true")
    idle = function_of(api.backend, container_id)
    key = api.backend.store.get_container(container_id).backend_state.function_key
    await remove(api, container_id)
    await api.backend.clients.control.create_function(
        FunctionName="skls-" + "d" * 24,
        Role=api.backend.config.role_arn,
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"},
        Tags={"sockerless:managed": "true", "sockerless:instance": INSTANCE, FUNCTION_KEY_TAG: "d" * 64},
    )
    backend = api.backend
    orphans = await find_orphans(backend.clients, backend.store, backend.config, INSTANCE)
    assert [(o.function_name, o.function_key, o.mine) for o in orphans] == [
        ("skls-" + "d" * 24, "d" * 64, True)
    ]
    assert idle in await function_names(backend) and key
