"""Removal: the remove answers before its function is deleted; a deletion that fails stays pending and
the next start finishes it; a removed container answers wait and logs by ID and name, also after a
restart; its name is free at once."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest

from sockerless_lambda import output
from sockerless_lambda.cleanups import CLOSE_WAIT_SECONDS
from sockerless_lambda.reconcile import find_orphans

API = "/internal/v1"
DELETE_FAILS = {"kind": "error", "operation": "lambda:DeleteFunction"}


async def function_names(backend) -> set[str]:
    listed = await backend.clients.control.list_functions()
    return {function["FunctionName"] for function in listed["Functions"]}


def function_of(container_id: str) -> str:
    return f"skls-{container_id[:24]}"


async def remove(api, ref: str) -> None:
    response = await api.client.delete(f"{API}/containers/{ref}")
    assert response.status == 204, await response.text()


async def test_the_function_is_deleted_after_the_remove_answered(api) -> None:
    container_id = await api.create("web")
    await remove(api, "web")
    assert (await api.client.get(f"{API}/containers/web")).status == 404
    await api.backend.cleanups_settled()
    assert function_of(container_id) not in await function_names(api.backend)
    assert api.backend.store.cleanups_pending() == []
    assert api.backend.store.removed_container("web").id == container_id


@pytest.mark.parametrize("config_overrides", [{"function_idle_seconds": 0}])  # shared ones too, at once
async def test_auto_remove_and_prune_delete_the_functions_after_answering(api, config_overrides) -> None:
    auto_removed, result = await api.run("exit 2", HostConfig={"AutoRemove": True})
    assert result == {"StatusCode": 2}
    exited, _ = await api.run("exit 0")
    created = await api.create()
    response = await api.client.post(f"{API}/containers/prune")
    assert set((await response.json())["ContainersDeleted"]) >= {exited, created}
    await api.backend.cleanups_settled()
    assert await function_names(api.backend) == set()
    assert (await api.wait(auto_removed)) == {"StatusCode": 2}


async def test_the_name_is_free_as_soon_as_the_remove_answered(api) -> None:
    first = await api.create("same")
    await remove(api, "same")
    again = await api.create("same", Cmd=["sh", "-c", "exit 6"])  # docker run --name same, at once
    assert again != first
    waiting = asyncio.create_task(api.wait("same", "next-exit"))
    await api.start("same")
    assert await waiting == {"StatusCode": 6}  # the live container, not the removed one
    await api.backend.cleanups_settled()
    assert function_of(first) not in await function_names(api.backend)  # its own (no command)
    assert api.function_name(again) in await function_names(api.backend)  # its image configuration's


async def test_a_removed_container_answers_wait_and_logs_by_id_and_name_after_a_restart(api, backend) -> None:
    container_id = await api.create("job", Cmd=["sh", "-c", "echo kept; exit 5"])
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    await api.start(container_id)
    assert await waiting == {"StatusCode": 5}
    await remove(api, "job")
    await backend.close()
    await backend.start()
    for ref in (container_id, "job", container_id[:12]):
        assert await api.wait(ref) == {"StatusCode": 5}, ref
        assert await api.wait(ref, "removed") == {"StatusCode": 5}, ref
        assert await api.output(ref) == "kept\n", ref
    assert (await api.client.get(f"{API}/containers/job")).status == 404  # removed all the same


async def test_a_failed_delete_function_stays_pending_and_the_next_start_finishes_it(
    api, backend, lambda_simulator, caplog
) -> None:
    container_id = await api.create("doomed")
    lambda_simulator.add_fault(DELETE_FAILS)  # every DeleteFunction, past the retries
    with caplog.at_level(logging.WARNING, logger="sockerless.lambda"):
        await remove(api, "doomed")  # answered all the same
        await backend.cleanups_settled()
    assert (await api.client.get(f"{API}/containers/doomed")).status == 404
    assert await api.wait("doomed") == {"StatusCode": 0}
    warned = [
        r for r in caplog.records if r.getMessage().startswith("deleting a removed container's function")
    ]
    assert [(r.fields["container"], r.fields["function"]) for r in warned] == [
        (container_id, function_of(container_id))
    ]
    assert [removed.id for removed in backend.store.cleanups_pending()] == [container_id]
    assert function_of(container_id) in await function_names(backend)
    # Ours and being deleted: not an orphan.
    assert await find_orphans(backend.clients, backend.store, backend.config, "test-instance") == []

    lambda_simulator.clear_faults()
    await backend.close()
    await backend.start()  # reconciliation deletes it before the server would listen
    assert backend.store.cleanups_pending() == []
    assert function_of(container_id) not in await function_names(backend)
    assert await api.wait("doomed") == {"StatusCode": 0}


async def test_close_waits_a_bounded_time_then_leaves_the_deletion_pending(
    api, backend, lambda_simulator, state_path
) -> None:
    container_id = await api.create()
    # Held longer than close waits: cut at close, the call never reaches moto.
    latency_ms = int(CLOSE_WAIT_SECONDS * 1000) + 3000
    lambda_simulator.add_fault(
        {"kind": "latency", "operation": "lambda:DeleteFunction", "latency_ms": latency_ms}
    )
    await remove(api, container_id)
    await backend.close()
    with sqlite3.connect(state_path) as raw:
        pending = raw.execute("SELECT id, cleanup FROM removed_containers").fetchall()
    raw.close()
    assert pending == [
        (container_id, json.dumps({"function": function_of(container_id)}, separators=(",", ":")))
    ]
    lambda_simulator.clear_faults()
    await backend.start()
    assert backend.store.cleanups_pending() == []
    assert function_of(container_id) not in await function_names(backend)


@pytest.mark.parametrize("config_overrides", [{"log_delivery_seconds": 120}])
@pytest.mark.cloudwatch_path  # output arriving after the exit: the bootstrap's is whole at the exit
async def test_an_auto_remove_container_is_removed_at_its_exit_while_its_output_still_arrives(
    api, lambda_simulator, monkeypatch, config_overrides
) -> None:
    # Docker removes a --rm container at its exit. Here CloudWatch delivers nothing until the fault is
    # lifted, so the removal cannot have waited for the output (more than the 4 KB tail holds).
    monkeypatch.setattr(output, "LOG_SETTLE_SECONDS", 0.0)
    blocked = lambda_simulator.add_fault({"kind": "error", "operation": "logs:FilterLogEvents"})
    container_id = await api.create(Cmd=["sh", "-c", "seq 1 2000; exit 3"], HostConfig={"AutoRemove": True})
    removed = asyncio.create_task(api.wait(container_id, "removed"))
    following = asyncio.create_task(api.output(container_id, follow="1", condition="next-exit"))
    await api.start(container_id)

    assert await asyncio.wait_for(removed, 30) == {"StatusCode": 3}
    assert (await api.client.get(f"{API}/containers/{container_id}")).status == 404
    assert not following.done()  # the attached client reads on: the output is not complete yet

    lambda_simulator.remove_fault(blocked)
    expected = "".join(f"{n}\n" for n in range(1, 2001))
    assert await asyncio.wait_for(following, 60) == expected
    assert await api.output(container_id) == expected  # by ID, within the grace period
