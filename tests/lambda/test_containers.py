"""Containers through the internal API, against the simulator: create, start, wait, stop, remove, list."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

API = "/internal/v1"


@pytest.mark.cloudwatch_path  # the command in the ImageConfig; with the bootstrap: test_bootstrap_payload
async def test_create_answers_201_with_a_64_hex_id_and_creates_the_function(api, lambda_simulator) -> None:
    container_id = await api.create(
        "web",
        Cmd=["echo", "hi"],
        Entrypoint=["/bin/sh", "-c"],
        WorkingDir="/tmp",
        Env=["AB=1", "EMPTY"],
        Labels={"team": "data"},
        HostConfig={"Memory": 256 * 1024 * 1024},
    )
    assert re.fullmatch(r"[0-9a-f]{64}", container_id)
    function = await api.backend.clients.control.get_function(FunctionName=f"skls-{container_id[:24]}")
    configuration = function["Configuration"]
    assert configuration["PackageType"] == "Image"
    assert configuration["MemorySize"] == 256
    assert configuration["Timeout"] == 900
    assert configuration["Environment"]["Variables"] == {"AB": "1"}
    assert configuration["ImageConfigResponse"]["ImageConfig"] == {
        "EntryPoint": ["/bin/sh", "-c"],
        "Command": ["echo", "hi"],
        "WorkingDirectory": "/tmp",
    }
    assert function["Tags"] == {
        "sockerless:managed": "true",
        "sockerless:container-id": container_id,
        "sockerless:name": "web",
        "sockerless:instance": "test-instance",
        "team": "data",
    }
    inspected = await api.inspect("web")
    assert inspected["Id"] == container_id
    assert inspected["Name"] == "/web"
    assert inspected["State"]["Status"] == "created"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Image": ""}, "Image is required"),
        ({"Env": ["AWS_REGION=x"]}, "reserved by Lambda"),
        ({"Env": ["1BAD=x"]}, "invalid environment variable name"),
        ({"Env": ["BIG=" + "x" * 4094]}, "environment too large"),
        # 450 short variables: 2250 bytes of names and values, 4951 as the JSON Lambda measures.
        ({"Env": [f"V{i:03}=x" for i in range(450)]}, "environment too large: 4951 bytes as JSON"),
        ({"HostConfig": {"Memory": 64 * 1024 * 1024}}, "Lambda allows 128-10240 MB"),
        ({"HostConfig": {"Memory": 20 * 1024 * 1024 * 1024}}, "Lambda allows 128-10240 MB"),
        ({"WorkingDir": "relative"}, "absolute path"),
    ],
)
async def test_create_rejects_what_lambda_would_with_400_before_any_aws_call(
    api, lambda_simulator, body, message
) -> None:
    lambda_simulator.stats.reset()
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag", **body})
    assert response.status == 400
    assert message in (await response.json())["message"]
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0


@pytest.mark.cloudwatch_path  # reads the function's ImageConfig; through the bootstrap: the payload's argv
async def test_an_empty_entrypoint_means_none_and_the_command_runs_as_it_is(api) -> None:
    # docker run --entrypoint "" IMAGE echo plain: Docker runs `echo plain` without the image's ENTRYPOINT.
    container_id = await api.create(Entrypoint=[""], Cmd=["echo", "plain"])
    function = await api.backend.clients.control.get_function(FunctionName=f"skls-{container_id[:24]}")
    image_config = function["Configuration"]["ImageConfigResponse"]["ImageConfig"]
    assert (image_config["EntryPoint"], image_config.get("Command")) == (["echo", "plain"], [])
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    await api.start(container_id)
    assert await asyncio.wait_for(waiting, 30) == {"StatusCode": 0}
    assert await api.output(container_id) == "plain\n"


async def test_an_empty_entrypoint_without_a_command_is_docker_s_400(api, lambda_simulator) -> None:
    lambda_simulator.stats.reset()
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag", "Entrypoint": [""]})
    assert response.status == 400
    assert (await response.json())["message"] == "No command specified"
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0


async def test_create_rejects_volumes_with_501(api) -> None:
    response = await api.client.post(
        f"{API}/containers", json={"Image": "repo:tag", "HostConfig": {"Binds": ["/a:/b"]}}
    )
    assert response.status == 501
    assert (await response.json())["message"].startswith("This backend (lambda) does not support volumes.")


@pytest.mark.parametrize(
    ("host_config", "warning"),
    [
        ({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}, "published ports are discarded"),
        ({"PublishAllPorts": True}, "published ports are discarded"),
        ({"NetworkMode": "none"}, "--network none is not applied"),
        ({"RestartPolicy": {"Name": "always"}}, "restart policy 'always' is not applied"),
        ({"Privileged": True, "CapAdd": ["NET_ADMIN"]}, "--privileged, --cap-add not applied"),
        ({"NanoCpus": 1_000_000_000}, "CPU limits are not applied"),
        ({"ExtraHosts": ["db:10.0.0.2"]}, "--add-host are not applied"),
        ({"Init": True, "Tmpfs": {"/scratch": ""}, "PidMode": "host"}, "--init, --tmpfs, --pid not applied"),
    ],
)
async def test_settings_lambda_cannot_apply_are_created_with_a_warning(api, host_config, warning) -> None:
    response = await api.client.post(
        f"{API}/containers", json={"Image": "repo:tag", "HostConfig": host_config}
    )
    assert response.status == 201
    assert [w for w in (await response.json())["Warnings"] if warning in w]


async def test_user_and_hostname_are_created_with_a_warning(api) -> None:
    body = {"Image": "repo:tag", "User": "1000:1000", "Hostname": "worker"}
    response = await api.client.post(f"{API}/containers", json=body)
    assert response.status == 201
    assert [w for w in (await response.json())["Warnings"] if w.startswith("--user, --hostname not applied")]


async def test_the_cli_defaults_give_no_warning(api) -> None:
    # What `docker create alpine true` sends (docker 28): none of it is dropped on Lambda.
    host_config = {
        "NetworkMode": "default",
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "PortBindings": {},
        "MemorySwappiness": -1,
        "ConsoleSize": [0, 0],
    }
    body = {"Image": "repo:tag", "Cmd": ["true"], "HostConfig": host_config}
    response = await api.client.post(f"{API}/containers", json=body)
    assert response.status == 201
    assert (await response.json())["Warnings"] == []


@pytest.mark.parametrize("mode", ["mynet", "container:other"])
async def test_create_on_a_network_is_a_501_before_any_aws_call(api, lambda_simulator, mode) -> None:
    lambda_simulator.stats.reset()
    body = {"Image": "repo:tag", "HostConfig": {"NetworkMode": mode}}
    response = await api.client.post(f"{API}/containers", json=body)
    assert response.status == 501
    message = (await response.json())["message"]
    assert message.startswith(f"This backend (lambda) does not support networks. Remove --network {mode}")
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0


async def test_a_taken_name_is_a_409_before_any_aws_call(api, lambda_simulator) -> None:
    first = await api.create("twin")
    lambda_simulator.stats.reset()
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag"}, params={"name": "twin"})
    assert response.status == 409
    assert (await response.json())["message"] == (
        f'Conflict. The container name "/twin" is already in use by container "{first}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert lambda_simulator.stats.snapshot()["total_calls"] == 0


@pytest.mark.cloudwatch_path  # labels become tags of a container's own function (a shared one has none)
async def test_labels_breaking_tag_rules_stay_labels_and_give_a_warning(api) -> None:
    response = await api.client.post(
        f"{API}/containers", json={"Image": "repo:tag", "Cmd": ["true"], "Labels": {"aws:reserved": "x"}}
    )
    assert response.status == 201
    created = await response.json()
    assert "labels not copied" in created["Warnings"][0]
    function = await api.backend.clients.control.get_function(FunctionName=f"skls-{created['Id'][:24]}")
    assert "aws:reserved" not in function["Tags"]
    assert (await api.inspect(created["Id"]))["Config"]["Labels"] == {"aws:reserved": "x"}


async def test_only_the_labels_lambda_refuses_as_tags_are_left_out_with_a_warning(api) -> None:
    # A tab passes Python's \s but not Lambda's [\p{L}\p{Z}\p{N}_.:/=+\-@]: it would fail the create.
    labels = {"team": "data", "note": "a\tb", "größe": "groß 1", "sockerless:name": "other"}
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag", "Labels": labels})
    assert response.status == 201
    created = await response.json()
    assert [
        w for w in created["Warnings"] if w.startswith("labels not copied") and "note, sockerless:name" in w
    ]
    function = await api.backend.clients.control.get_function(FunctionName=f"skls-{created['Id'][:24]}")
    assert function["Tags"]["team"] == "data"
    assert function["Tags"]["größe"] == "groß 1"
    assert "note" not in function["Tags"]
    assert function["Tags"]["sockerless:name"] != "other"


async def test_labels_beyond_lambda_s_50_tags_are_left_out_with_a_warning(api) -> None:
    labels = {f"label{i:02}": "x" for i in range(60)}
    response = await api.client.post(f"{API}/containers", json={"Image": "repo:tag", "Labels": labels})
    assert response.status == 201
    created = await response.json()
    assert [w for w in created["Warnings"] if "label46, label47" in w and "exceed Lambda's 50 tags" in w]
    function = await api.backend.clients.control.get_function(FunctionName=f"skls-{created['Id'][:24]}")
    assert len(function["Tags"]) == 50
    assert function["Tags"]["label45"] == "x"


@pytest.mark.parametrize(("command", "code"), [("echo ok", 0), ("exit 7", 7), ("kill -9 $$", 137)])
async def test_the_exit_code_is_the_commands(api, command, code) -> None:
    container_id, result = await api.run(command)
    assert result == {"StatusCode": code} if code != 137 else result["StatusCode"] == 137
    state = (await api.inspect(container_id))["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == code
    assert state["FinishedAt"] >= state["StartedAt"] > "2000"


@pytest.mark.parametrize("config_overrides", [{"timeout": 1}])
async def test_a_timeout_exits_137_without_a_wait_error_and_inspect_says_it_timed_out(
    api, config_overrides
) -> None:
    container_id, result = await api.run("sleep 5")
    assert result == {"StatusCode": 137}  # the container ran and ended: no "Error" in the wait
    state = (await api.inspect(container_id))["State"]
    assert (state["ExitCode"], state["Status"]) == (137, "exited")
    assert "timed out" in state["Error"]


@pytest.mark.parametrize(("command", "code"), [(["/no/such/binary"], 127), (["/etc"], 126)])
async def test_a_command_that_cannot_run_exits_127_or_126_with_the_reason_in_state_error(
    api, command, code
) -> None:
    container_id = await api.create(Cmd=command)
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    await api.start(container_id)
    assert await waiting == {"StatusCode": code}
    state = (await api.inspect(container_id))["State"]
    assert state["ExitCode"] == code
    assert state["Error"].startswith("cannot run the command: ")
    assert command[0] in state["Error"]
    assert await api.wait(container_id) == {"StatusCode": code}  # not-running, answered from the record


async def test_not_running_wait_of_a_created_container_answers_0_at_once(api) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "exit 4"])
    assert await asyncio.wait_for(api.wait(container_id), 10) == {"StatusCode": 0}
    assert (await api.inspect(container_id))["State"]["Status"] == "created"  # nothing was started


async def test_next_exit_wait_of_a_created_container_waits_for_its_coming_run(api) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "exit 4"])
    waiting = asyncio.create_task(api.wait(container_id, "next-exit"))
    done, _ = await asyncio.wait([waiting], timeout=0.3)
    assert not done  # no run yet: it waits
    await api.start(container_id)
    assert await asyncio.wait_for(waiting, 30) == {"StatusCode": 4}
    assert await asyncio.wait_for(api.wait(container_id), 5) == {"StatusCode": 4}  # exited: at once


async def test_start_of_a_running_container_is_304_and_restart_after_exit_runs_again(api, poll) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "sleep 0.5; exit 2"])
    await api.start(container_id)
    again = await api.client.post(f"{API}/containers/{container_id}/start")
    assert again.status == 304
    assert (await api.wait(container_id))["StatusCode"] == 2
    response = await api.client.post(f"{API}/containers/{container_id}/restart")
    assert response.status == 204
    assert (await api.wait(container_id))["StatusCode"] == 2


async def test_restart_of_a_running_container_is_409_saying_lambda_cannot_stop_a_run(api) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "sleep 1; exit 2"])
    await api.start(container_id)
    response = await api.client.post(f"{API}/containers/{container_id}/restart")
    assert response.status == 409
    message = (await response.json())["message"]
    assert message.startswith(f"cannot restart container {container_id[:12]}: it is running")
    assert "Lambda cannot stop a run" in message
    assert (await api.wait(container_id))["StatusCode"] == 2  # the run went on, once


async def test_stop_and_kill_are_noops_that_succeed_and_warn_naming_the_container(api, caplog) -> None:
    container_id = await api.create("busy", Cmd=["sh", "-c", "sleep 0.3; exit 5"])
    await api.start(container_id)
    with caplog.at_level(logging.WARNING, logger="sockerless.lambda.containers"):
        assert (await api.client.post(f"{API}/containers/{container_id}/stop")).status == 204
        assert (await api.client.post(f"{API}/containers/{container_id}/kill")).status == 204
    warnings = [r for r in caplog.records if r.name == "sockerless.lambda.containers"]
    assert [r.getMessage().split(" ", 1)[0] for r in warnings] == ["stop", "kill"]
    for record in warnings:
        assert record.levelno == logging.WARNING
        assert "cannot be stopped" in record.getMessage()
        assert record.__dict__["fields"] == {"container": container_id, "name": "busy"}
    assert (await api.wait(container_id))["StatusCode"] == 5  # the run was not cut short
    assert (await api.client.post(f"{API}/containers/{container_id}/stop")).status == 304
    after_exit = await api.client.post(f"{API}/containers/{container_id}/kill")
    assert after_exit.status == 409
    assert (await after_exit.json())["message"] == f"Container {container_id} is not running"


async def test_removing_a_running_container_needs_force(api, lambda_simulator, poll) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "sleep 2"])
    await api.start(container_id)
    response = await api.client.delete(f"{API}/containers/{container_id}")
    assert response.status == 409
    assert (await response.json())["message"] == (
        f"You cannot remove a running container {container_id[:12]}. "
        "Stop the container before attempting removal or force remove"
    )
    removed = asyncio.create_task(api.wait(container_id, "removed"))
    await asyncio.sleep(0)
    assert (await api.client.delete(f"{API}/containers/{container_id}", params={"force": "1"})).status == 204
    assert (await removed)["StatusCode"] == 137
    assert (await api.client.get(f"{API}/containers/{container_id}")).status == 404
    await api.backend.cleanups_settled()  # the function is deleted after the answer
    functions = await api.backend.clients.control.list_functions()
    assert all(f["FunctionName"] != f"skls-{container_id[:24]}" for f in functions["Functions"])


async def test_remove_deletes_the_function_and_a_gone_function_is_fine(api) -> None:
    container_id = await api.create("gone")
    await api.backend.clients.control.delete_function(FunctionName=f"skls-{container_id[:24]}")
    assert (await api.client.delete(f"{API}/containers/gone")).status == 204
    response = await api.client.get(f"{API}/containers/gone")
    assert response.status == 404
    assert (await response.json())["message"] == "No such container: gone"
    await api.backend.cleanups_settled()
    assert api.backend.store.cleanups_pending() == []  # ResourceNotFoundException: nothing left to do


async def test_auto_remove_removes_after_exit_and_releases_removed_waiters(api, poll) -> None:
    container_id = await api.create(Cmd=["sh", "-c", "exit 3"], HostConfig={"AutoRemove": True})
    removed = asyncio.create_task(api.wait(container_id, "removed"))
    await asyncio.sleep(0)
    await api.start(container_id)
    assert (await removed) == {"StatusCode": 3}
    assert (await api.client.get(f"{API}/containers/{container_id}")).status == 404
    # The SDK may ask after removal: the store's removed container answers.
    assert (await api.wait(container_id)) == {"StatusCode": 3}
    assert (await api.wait(container_id[:12], "removed")) == {"StatusCode": 3}


async def test_wait_on_an_unknown_container_is_404(api) -> None:
    response = await api.client.post(f"{API}/containers/nope/wait")
    assert response.status == 404


async def test_list_shows_running_by_default_and_all_with_filters(api, poll) -> None:
    done_id, _ = await api.run("exit 1", Labels={"role": "batch"})
    slow = await api.create("slow", Cmd=["sh", "-c", "sleep 1"], Labels={"role": "web"})
    await api.start(slow)
    running = await (await api.client.get(f"{API}/containers")).json()
    assert [row["Id"] for row in running] == [slow]
    assert running[0]["Status"].startswith("Up")
    everything = await (await api.client.get(f"{API}/containers", params={"all": "1"})).json()
    assert {row["Id"] for row in everything} == {done_id, slow}
    batch = await (
        await api.client.get(f"{API}/containers", params={"all": "1", "filters": '{"label":["role=batch"]}'})
    ).json()
    assert [row["Id"] for row in batch] == [done_id]
    assert batch[0]["State"] == "exited"
    assert batch[0]["Status"].startswith("Exited (1) ")
    await api.wait(slow)


async def test_prune_removes_stopped_containers(api) -> None:
    exited, _ = await api.run("true")
    created = await api.create()
    response = await api.client.post(f"{API}/containers/prune")
    assert response.status == 200
    assert set((await response.json())["ContainersDeleted"]) == {exited, created}
    assert (await api.client.get(f"{API}/containers", params={"all": "1"})).status == 200
    assert await (await api.client.get(f"{API}/containers", params={"all": "1"})).json() == []


@pytest.mark.lambda_simulator(pending_seconds=0.6)
async def test_a_pending_function_is_waited_for_before_the_invoke(api, lambda_simulator) -> None:
    _, result = await api.run("exit 0")
    assert result == {"StatusCode": 0}
    calls = lambda_simulator.stats.snapshot()["calls"]
    assert calls["lambda:InvokeWithResponseStream"] == 1
    assert calls["lambda:GetFunction"] >= 2  # polled while Pending, then Active (its own quota)
    assert "lambda:GetFunctionConfiguration" not in calls
