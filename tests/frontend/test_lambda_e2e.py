"""End to end: the real docker CLI and the Docker SDK -> the frontend -> the Lambda backend -> the simulator.

The simulator runs each function's command on this host, so any image name works
(``alpine`` as well as an ECR URI); the output reaches ``docker`` through CloudWatch Logs,
the way it does on AWS.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import docker.errors
import docker.types
import pytest
import pytest_asyncio

from sockerless.api.server import InternalAPIServer
from sockerless.backend import BackendRuntime
from sockerless.config import ServerConfig
from sockerless.frontend import DockerFrontend
from tests.lambda_settings import simulator_config

from .conftest import CLIENT_TIMEOUT, DOCKER, DockerCLI, serving

# ImportError, not only a missing module: while the Lambda backend is rewritten it may not import.
lambda_backend = pytest.importorskip("sockerless_lambda.backend", exc_type=ImportError)

pytestmark = pytest.mark.docker_cli

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


@pytest_asyncio.fixture
async def backend_server(
    lambda_simulator: Any, short_dir: str, tmp_path: Path
) -> AsyncIterator[InternalAPIServer]:
    config = simulator_config(lambda_simulator)
    backend = lambda_backend.LambdaBackend(config, BackendRuntime(str(tmp_path / "lambda.sqlite3"), "e2e"))
    async with serving(backend, ServerConfig(socket=f"{short_dir}/backend.sock")) as server:
        yield server


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(function, *args, **kwargs)


# ---------------------------------------------------------------------------- the docker CLI


async def test_run_rm_prints_hi_and_exits_3(docker_cli: DockerCLI) -> None:
    result = await docker_cli("run", "--rm", IMAGE, "sh", "-c", "echo hi; exit 3")
    assert result.code == 3, result.err
    assert result.out == "hi\n"
    assert "WARNING" not in result.err  # the CLI's defaults drop nothing on Lambda
    assert (await docker_cli("ps", "-a", "-q")).out == ""


async def test_run_alpine_pulls_then_runs(docker_cli: DockerCLI) -> None:
    result = await docker_cli("run", "--rm", "alpine", "sh", "-c", "echo from alpine")
    assert result.code == 0, result.err
    assert "Unable to find image 'alpine:latest' locally" in result.err
    assert result.out == "from alpine\n"


async def test_run_warns_of_what_lambda_drops_and_refuses_a_network(docker_cli: DockerCLI) -> None:
    result = await docker_cli("run", "--rm", "-p", "8080:80", IMAGE, "echo", "served")
    assert result.code == 0, result.err
    assert "WARNING: published ports are discarded" in result.err
    assert result.out == "served\n"
    refused = await docker_cli("run", "--rm", "--network", "mynet", IMAGE, "true")
    assert refused.code == 125
    assert "This backend (lambda) does not support networks. Remove --network mynet" in refused.err


async def test_images_lists_what_was_pulled_and_tagged_and_system_prune_works(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", "alpine")).code == 0
    assert (await docker_cli("tag", "alpine", "mine:v1")).code == 0
    listed = await docker_cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert listed.code == 0, listed.err
    rows = dict(line.split(" ") for line in listed.out.splitlines())
    assert rows["alpine:latest"] == rows["mine:v1"]
    only = await docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}", "alpine")
    assert only.out.splitlines() == ["alpine:latest"]
    assert (await docker_cli("run", IMAGE, "true")).code == 0
    pruned = await docker_cli("system", "prune", "-f")
    assert pruned.code == 0, pruned.err
    assert (await docker_cli("ps", "-a", "-q")).out == ""


async def test_detached_run_wait_logs_rm(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    started = await docker_cli("run", "-d", "--name", "job", IMAGE, "sh", "-c", "echo one; echo two; exit 4")
    assert started.code == 0, started.err
    assert (await docker_cli("wait", "job")).out.strip() == "4"

    assert (await docker_cli("logs", "job")).out == "one\ntwo\n"
    assert (await docker_cli("logs", "--tail", "1", "job")).out == "two\n"
    stamped = (await docker_cli("logs", "-t", "job")).out.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two"]
    assert (await docker_cli("logs", "-f", "job")).out == "one\ntwo\n"

    template = await docker_cli("inspect", "--format", "{{.State.ExitCode}}", "job")
    assert template.out.strip() == "4"
    assert (await docker_cli("rm", "job")).code == 0
    assert (await docker_cli("inspect", "job")).code == 1


async def test_logs_follow_of_a_running_container(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    started = await docker_cli("run", "-d", IMAGE, "sh", "-c", "echo a; sleep 1; echo b")
    followed = await docker_cli("logs", "-f", started.out.strip())
    assert followed.code == 0, followed.err
    assert followed.out == "a\nb\n"


async def test_fifty_thousand_lines_reach_run_and_logs_whole(docker_cli: DockerCLI) -> None:
    # Far beyond Lambda's 4 KB tail: the backend reads the whole output from CloudWatch
    # and keeps it, so neither the run nor a later `docker logs` loses or reorders a line.
    expected = "".join(f"{n}\n" for n in range(1, 50_001))
    ran = await docker_cli("run", "--name", "many", IMAGE, "seq", "1", "50000")
    assert ran.code == 0, ran.err
    assert ran.out == expected
    assert (await docker_cli("logs", "many")).out == expected
    assert (await docker_cli("logs", "--tail", "2", "many")).out == "49999\n50000\n"


async def test_ps_with_label_filters(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    await docker_cli("create", "--label", "ci=yes", "--name", "labelled", IMAGE, "true")
    await docker_cli("create", "--name", "plain", IMAGE, "true")
    result = await docker_cli("ps", "-a", "--filter", "label=ci=yes", "--format", "{{.Names}} {{.Status}}")
    assert result.out.splitlines() == ["labelled Created"]


async def test_pull_both_reference_forms(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", "alpine")).code == 0
    assert (await docker_cli("pull", IMAGE)).code == 0
    inspected = await docker_cli("image", "inspect", "--format", "{{json .RepoTags}}", IMAGE)
    assert IMAGE in json.loads(inspected.out)


async def test_exec_is_refused_with_the_lambda_message(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    await docker_cli("create", "--name", "target", IMAGE, "true")
    result = await docker_cli("exec", "target", "ls")
    assert result.code == 1
    assert result.err.strip() == (
        "Error response from daemon: This backend (lambda) does not support exec. "
        "CI runners require exec-capable backends (ecs, cloudrun, aca, docker)."
    )


async def test_network_ls_is_refused(docker_cli: DockerCLI) -> None:
    result = await docker_cli("network", "ls")
    assert result.code == 1
    assert "This backend (lambda) does not support networks." in result.err


async def test_create_with_a_never_pulled_image_pulls_it_then_creates(docker_cli: DockerCLI) -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/never:1"
    result = await docker_cli("create", "--name", "fresh", image, "true")
    assert result.code == 0, result.err
    assert f"Unable to find image '{image}' locally" in result.err
    inspected = await docker_cli("inspect", "--format", "{{.Config.Image}}", "fresh")
    assert inspected.out.strip() == image


async def test_rmi_untags_then_deletes_and_refuses_an_image_a_container_uses(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", "alpine")).code == 0
    assert (await docker_cli("tag", "alpine", "mine:v1")).code == 0
    untagged = await docker_cli("rmi", "mine:v1")
    assert (untagged.code, untagged.out) == (0, "Untagged: mine:v1\n"), untagged.err
    image_id = (await docker_cli("image", "inspect", "--format", "{{.Id}}", "alpine")).out.strip()
    created = await docker_cli("create", "--name", "user", "alpine", "true")
    container_id = created.out.strip()
    refused = await docker_cli("rmi", "alpine")
    assert refused.code == 1
    assert refused.err.strip() == (
        'Error response from daemon: conflict: unable to remove repository reference "alpine" (must force)'
        f" - container {container_id[:12]} is using its referenced image {image_id[7:19]}"
    )
    by_id = await docker_cli("rmi", image_id[7:19])
    assert by_id.code == 1
    assert f"image is being used by stopped container {container_id[:12]}" in by_id.err
    forced = await docker_cli("rmi", "-f", "alpine")
    assert forced.code == 0, forced.err
    assert forced.out.splitlines() == ["Untagged: alpine:latest", f"Deleted: {image_id}"]
    assert (await docker_cli("images", "-q")).out == ""
    missing = await docker_cli("rmi", "alpine")
    assert missing.code == 1 and "No such image: alpine" in missing.err


async def test_image_prune_all_removes_the_images_no_container_uses(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", "alpine")).code == 0
    assert (await docker_cli("pull", IMAGE)).code == 0
    assert (await docker_cli("create", IMAGE, "true")).code == 0
    dangling = await docker_cli("image", "prune", "-f")  # no image is dangling here: nothing goes
    assert dangling.code == 0, dangling.err
    assert dangling.out.strip() == "Total reclaimed space: 0B"
    pruned = await docker_cli("image", "prune", "-a", "-f")
    assert pruned.code == 0, pruned.err
    assert "untagged: alpine:latest" in pruned.out and "deleted: sha256:" in pruned.out
    left = await docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert left.out.splitlines() == [IMAGE]


async def test_image_inspect_by_id_lists_every_tag_and_docker_short_digests(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", "alpine")).code == 0
    assert (await docker_cli("tag", "alpine", "mine:v1")).code == 0
    image_id = (await docker_cli("image", "inspect", "--format", "{{.Id}}", "mine:v1")).out.strip()
    for name in (image_id, image_id[7:19], "alpine", "mine:v1"):
        result = await docker_cli(
            "image", "inspect", "--format", "{{json .RepoTags}} {{json .RepoDigests}}", name
        )
        tags, digests = (json.loads(part) for part in result.out.split(" "))
        assert tags == ["alpine:latest", "mine:v1"], name
        assert digests == [f"alpine@{image_id}"], name  # Docker's short form, filled by a pull by tag
    listed = await docker_cli("images", "--digests", "--format", "{{.Repository}} {{.Digest}}", "alpine")
    assert listed.out.splitlines() == [f"alpine {image_id}"]


async def test_system_df_counts_images_and_containers(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", "alpine")).code == 0
    assert (await docker_cli("pull", IMAGE)).code == 0
    assert (await docker_cli("run", "--name", "ran", IMAGE, "true")).code == 0
    assert (await docker_cli("create", IMAGE, "true")).code == 0
    result = await docker_cli("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "Images 2 1 0B",
        "Containers 2 0 0B",
        "Local Volumes 0 0 0B",
        "Build Cache 0 0 0B",
    ]
    assert (await docker_cli("tag", "alpine", "mine:v1")).code == 0  # one more name, not one more image
    assert (await docker_cli("info", "--format", "{{.Images}}")).out.strip() == "2"
    verbose = await docker_cli("system", "df", "-v", "--format", "{{json .}}")
    assert verbose.code == 0, verbose.err
    assert "ran" in verbose.out


async def test_ps_filters_exited_before_and_since(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    for name, code in (("first", 3), ("second", 0), ("third", 3)):
        assert (await docker_cli("run", "--name", name, IMAGE, "sh", "-c", f"exit {code}")).code == code
    assert (await docker_cli("create", "--name", "fourth", IMAGE, "true")).code == 0

    async def names(*filters: str, everything: bool = True) -> list[str]:
        args = ["ps", *(["-a"] if everything else []), "--format", "{{.Names}}"]
        for value in filters:
            args += ["--filter", value]
        result = await docker_cli(*args)
        assert result.code == 0, result.err
        return result.out.splitlines()

    assert await names("exited=3") == ["third", "first"]
    assert await names("exited=0") == ["second"]  # a container never started has no exit code
    assert await names("before=third") == ["second", "first"]
    assert await names("before=fourth", everything=False) == []  # as Docker: running ones only
    assert await names("since=first") == ["fourth", "third", "second"]
    assert await names("since=first", "before=fourth", "exited=3") == ["third"]
    assert await names("status=exited", everything=False) == ["third", "second", "first"]  # implies -a
    unknown = await docker_cli("ps", "--filter", "before=nosuch")
    assert unknown.code == 1 and "No such container: nosuch" in unknown.err
    invalid = await docker_cli("ps", "--filter", "exited=x")
    assert invalid.code == 1 and "invalid filter 'exited=x'" in invalid.err


async def test_log_driver_none_keeps_no_output_and_unknown_drivers_are_refused(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    ran = await docker_cli(
        "run", "--log-driver", "none", "--name", "quiet", IMAGE, "sh", "-c", "echo hi; exit 2"
    )
    assert ran.code == 2, ran.err
    assert ran.out == ""  # nothing is kept, so the read-only attach has nothing to show
    logs = await docker_cli("logs", "quiet")
    assert logs.code == 1
    assert (
        logs.err.strip() == "Error response from daemon: configured logging driver does not support reading"
    )
    shown = await docker_cli("inspect", "--format", "{{.HostConfig.LogConfig.Type}}", "quiet")
    assert shown.out.strip() == "none"
    refused = await docker_cli("run", "--rm", "--log-driver", "syslog", IMAGE, "true")
    assert refused.code == 125
    assert "logger: no log driver named 'syslog' is registered" in refused.err
    assert (await docker_cli("ps", "-a", "--format", "{{.Names}}")).out.splitlines() == ["quiet"]


async def test_inspect_carries_the_runtime_and_empty_network_settings(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    assert (await docker_cli("create", "--name", "shape", IMAGE, "true")).code == 0
    default_runtime = (await docker_cli("info", "--format", "{{.DefaultRuntime}}")).out.strip()
    inspected = await docker_cli("inspect", "shape")  # the CLI prints the daemon's JSON as it came
    container = json.loads(inspected.out)[0]
    assert container["HostConfig"]["Runtime"] == default_runtime == "lambda"
    assert container["HostConfig"]["LogConfig"]["Type"] == "json-file"  # the CLI sent it empty
    settings = container["NetworkSettings"]
    for key in ("IPAddress", "MacAddress", "Gateway", "Bridge", "EndpointID", "IPv6Gateway"):
        assert settings[key] == "", key
    assert settings["Networks"] == {} and settings["Ports"] == {}
    assert settings["IPPrefixLen"] == 0


async def test_inspect_of_an_unknown_name_prints_no_such_object(docker_cli: DockerCLI) -> None:
    result = await docker_cli("inspect", "nosuch")
    assert result.code == 1
    assert "No such object: nosuch" in result.err
    login = await docker_cli("login", "-u", "me", "--password-stdin", "registry.example.com", input=b"pw\n")
    assert login.code == 0, login.err
    assert "Login Succeeded" in login.out


# ---------------------------------------------------------------------------- the Docker SDK


async def test_sdk_pull_run_blocking_and_detached(sdk: Any) -> None:
    image = await call(sdk.images.pull, "alpine")
    assert "alpine:latest" in image.tags
    output = await call(sdk.containers.run, "alpine", ["sh", "-c", "echo blocking"], remove=True)
    assert output == b"blocking\n"

    container = await call(
        sdk.containers.run, "alpine", ["sh", "-c", "echo detached; exit 2"], detach=True, labels={"k": "v"}
    )
    assert await call(container.wait) == {"StatusCode": 2}
    assert await call(container.logs) == b"detached\n"
    listed = await call(sdk.containers.list, all=True, filters={"label": ["k=v"]})
    assert [c.id for c in listed] == [container.id]
    await call(container.remove)
    with pytest.raises(docker.errors.NotFound):
        await call(sdk.containers.get, container.id)


async def test_sdk_blocking_run_with_auto_remove(sdk: Any) -> None:
    """The backend removes an ``auto_remove`` container once its output is complete. The SDK inspects
    the container right after its logs request; a container that is gone by then is a 404, on Docker as
    here (docker-py #1813), so this one outlives that moment."""
    await call(sdk.images.pull, IMAGE)
    output = await call(sdk.containers.run, IMAGE, ["sh", "-c", "sleep 1; echo auto"], auto_remove=True)
    assert output == b"auto\n"
    deadline = asyncio.get_running_loop().time() + 30
    while await call(sdk.api.containers, all=True):  # the rows only: list() inspects each, racing --rm
        assert asyncio.get_running_loop().time() < deadline, "the auto-remove container stayed"
        await asyncio.sleep(0.05)


async def test_sdk_blocking_run_with_log_driver_none_returns_none(sdk: Any) -> None:
    """As with Docker's ``none`` driver: the SDK reads no logs and ``run()`` returns None."""
    await call(sdk.images.pull, IMAGE)
    log_config = docker.types.LogConfig(type="none")
    output = await call(sdk.containers.run, IMAGE, ["sh", "-c", "echo hidden"], log_config=log_config)
    assert output is None
    (container,) = await call(sdk.containers.list, all=True)
    with pytest.raises(docker.errors.APIError, match="configured logging driver does not support reading"):
        await call(container.logs)


async def test_sdk_image_remove_and_tags_after_tag(sdk: Any) -> None:
    image = await call(sdk.images.pull, "alpine")
    await call(image.tag, "mine", "v1")
    assert sorted((await call(sdk.images.get, image.id)).tags) == ["alpine:latest", "mine:v1"]
    await call(sdk.images.remove, "mine:v1")
    assert (await call(sdk.images.get, image.id)).tags == ["alpine:latest"]
    await call(sdk.images.remove, image.id)
    with pytest.raises(docker.errors.ImageNotFound):
        await call(sdk.images.get, "alpine")


# ---------------------------------------------------------------------------- rename and events


async def test_rename_with_the_cli_and_dockers_errors(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    assert (await docker_cli("create", "--name", "before", IMAGE, "true")).code == 0
    assert (await docker_cli("create", "--name", "taken", IMAGE, "true")).code == 0
    renamed = await docker_cli("rename", "before", "after")
    assert renamed.code == 0, renamed.err
    assert (await docker_cli("inspect", "--format", "{{.Name}}", "after")).out.strip() == "/after"
    assert (await docker_cli("inspect", "before")).code == 1

    conflict = await docker_cli("rename", "after", "taken")
    assert conflict.code == 1
    assert 'The container name "/taken" is already in use by container' in conflict.err
    same = await docker_cli("rename", "after", "after")
    assert "Renaming a container with the same name as its current name" in same.err
    bad = await docker_cli("rename", "after", "no spaces")
    assert "Invalid container name (no spaces)" in bad.err
    missing = await docker_cli("rename", "nosuch", "other")
    assert missing.code == 1
    assert "Error response from daemon: No such container: nosuch" in missing.err


async def test_events_since_until_list_a_create_start_exit_remove_cycle(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    assert (await docker_cli("run", "--name", "cycle", IMAGE, "sh", "-c", "exit 3")).code == 3
    assert (await docker_cli("rename", "cycle", "cycled")).code == 0
    assert (await docker_cli("rm", "cycled")).code == 0
    # The CLI sends `--until 0s` as whole seconds, and Docker keeps to the nanosecond what is later: as
    # on Docker, the events of the current second show once it is over.
    second_over = int(time.time()) + 1
    while time.time() < second_over:
        await asyncio.sleep(0.05)

    listed = await docker_cli(
        "events", "--since", "1m", "--until", "0s", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}"
    )
    assert listed.code == 0, listed.err
    lines = listed.out.splitlines()
    assert f"image pull {IMAGE}" in lines
    container_id = next(line.split()[2] for line in lines if line.startswith("container create"))
    assert [line for line in lines if line.startswith("container ")] == [
        f"container {action} {container_id}" for action in ("create", "start", "die", "rename", "destroy")
    ]

    # Docker's default format, and the filters, as the CLI sends them.
    died = await docker_cli(
        "events", "--since", "1m", "--until", "0s", "--filter", "event=die", "--filter", "container=cycle"
    )
    assert died.code == 0, died.err
    [line] = died.out.splitlines()
    assert line.endswith(f" container die {container_id} (exitCode=3, image={IMAGE}, name=cycle)")


async def test_a_live_cli_events_stream_shows_a_new_containers_events(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    # --since makes the test independent of when the CLI has subscribed: the backend replays from then.
    since = f"{time.time() - 1:.3f}"
    process = await asyncio.create_subprocess_exec(
        DOCKER,
        "events",
        "--since",
        since,
        "--filter",
        "container=live",
        "--format",
        "{{.Action}}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=docker_cli.env,
    )
    try:
        assert (await docker_cli("run", "--rm", "--name", "live", IMAGE, "true")).code == 0
        seen: list[str] = []
        while "destroy" not in seen:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), CLIENT_TIMEOUT)
            assert line, (await process.stderr.read()).decode() if process.stderr else "ended"
            seen.append(line.decode().strip())
        assert seen == ["create", "start", "die", "destroy"]
    finally:
        process.kill()
        await process.wait()


async def test_sdk_events_stream_sees_a_new_container(sdk: Any) -> None:
    await call(sdk.images.pull, IMAGE)
    # The SDK returns once the headers are in, and they come once the backend has subscribed. `until`
    # bounds the stream, so a missing event fails the test instead of hanging it.
    stream = await call(
        sdk.events, decode=True, filters={"type": "container"}, until=int(time.time()) + int(CLIENT_TIMEOUT)
    )
    try:
        container = await call(
            sdk.containers.run, IMAGE, ["sh", "-c", "exit 2"], detach=True, name="watched", labels={"k": "v"}
        )

        def read_until_die() -> list[dict[str, Any]]:
            events = []
            for event in stream:
                events.append(event)
                if event["Action"] == "die":
                    break
            return events

        events = await call(read_until_die)
    finally:
        stream.close()
    assert [event["Action"] for event in events] == ["create", "start", "die"]
    die = events[-1]
    assert die["Actor"]["ID"] == die["id"] == container.id
    assert die["Actor"]["Attributes"] == {"exitCode": "2", "image": IMAGE, "name": "watched", "k": "v"}
    assert die["Type"] == "container" and die["status"] == "die" and die["from"] == IMAGE
    assert die["scope"] == "local" and die["time"] == die["timeNano"] // 1_000_000_000


# ---------------------------------------------------------------------------- what Lambda cannot do


async def test_top_and_stats_print_the_501_message(docker_cli: DockerCLI) -> None:
    assert (await docker_cli("pull", IMAGE)).code == 0
    assert (await docker_cli("create", "--name", "idle", IMAGE, "true")).code == 0
    top = await docker_cli("top", "idle")
    assert top.code == 1
    assert top.err.strip() == (
        "Error response from daemon: This backend (lambda) does not support container top."
    )
    stats = await docker_cli("stats", "--no-stream", "idle")
    assert stats.code == 1
    assert "This backend (lambda) does not support container stats." in stats.err


async def test_frontend_shutdown_ends_a_live_events_stream_cleanly(frontend: DockerFrontend) -> None:
    """Not held for the grace period and then cut (`unexpected EOF` in the CLI): ended, as by `until`."""
    path = frontend.address.removeprefix("unix://")
    async with (
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session,
        session.get("http://docker/v1.44/events") as response,
    ):
        assert response.status == 200
        stopping = asyncio.create_task(frontend.stop())
        assert await asyncio.wait_for(response.read(), CLIENT_TIMEOUT) == b""
        await stopping


# ---------------------------------------------------------------------------- quotas


@pytest.mark.lambda_simulator(pending_seconds=5.0)  # Lambda's quotas at their defaults (the simulator's)
async def test_50_docker_runs_at_once_with_5_s_pending_all_succeed(
    docker_cli: DockerCLI, lambda_simulator: Any
) -> None:
    # 50 real CLI processes at once, each of its own image configuration (a memory of its own, so a
    # function of its own: runs of one configuration share one): 50 CreateFunction against a quota of
    # 15/s, 50 functions Pending 5 s polled against GetFunction's 100/s, none of them seen to fail.
    # The image is not pulled first: each CLI pulls it, as 50 fresh CI jobs would.
    results = await asyncio.gather(
        *(
            docker_cli("run", "--rm", "-m", f"{128 + n}m", IMAGE, "sh", "-c", f"echo run {n}; exit {n % 3}")
            for n in range(50)
        )
    )

    assert [(result.code, result.out) for result in results] == [(n % 3, f"run {n}\n") for n in range(50)]
    # stderr holds at most the pull (a CLI that came late may find the image pulled by another).
    pulling = f"Unable to find image '{IMAGE}' locally"
    assert [result.err for result in results if result.err and not result.err.startswith(pulling)] == []
    assert [result.err for result in results if "rror" in result.err] == []
    snapshot = lambda_simulator.stats.snapshot()
    assert snapshot["throttles"] == {}
    assert snapshot["calls"]["lambda:CreateFunction"] == 50
    assert snapshot["calls"]["lambda:GetFunction"] >= 50  # every function was polled while Pending
    assert snapshot["invocations"]["started"] == 50
    assert (await docker_cli("ps", "-a", "-q")).out == ""


_INVOKES = frozenset({"lambda:Invoke", "lambda:InvokeWithResponseStream", "lambda:InvokeAsync"})


def _control_plane(lambda_simulator: Any) -> dict[str, int]:
    calls = lambda_simulator.stats.snapshot()["calls"]
    return {op: n for op, n in calls.items() if op.startswith("lambda:") and op not in _INVOKES and n}


@pytest.mark.lambda_simulator(pending_seconds=2.0)  # AWS's Pending for a new function, modelled
async def test_100_docker_runs_of_one_new_configuration_make_one_create_function_and_100_more_none(
    docker_cli: DockerCLI, lambda_simulator: Any
) -> None:
    """Issue 21's done-when through the real docker CLI: one shared function per image configuration."""
    assert (await docker_cli("pull", IMAGE)).code == 0
    lambda_simulator.stats.reset()
    first = await asyncio.gather(*(docker_cli("run", "--rm", IMAGE, "echo", f"a{n}") for n in range(100)))
    assert [(result.code, result.out) for result in first] == [(0, f"a{n}\n") for n in range(100)]
    assert _control_plane(lambda_simulator).get("lambda:CreateFunction") == 1

    lambda_simulator.stats.reset()
    second = await asyncio.gather(*(docker_cli("run", "--rm", IMAGE, "echo", f"b{n}") for n in range(100)))
    assert [(result.code, result.out) for result in second] == [(0, f"b{n}\n") for n in range(100)]
    assert _control_plane(lambda_simulator) == {}
    assert lambda_simulator.stats.snapshot()["calls"]["lambda:InvokeWithResponseStream"] == 100
