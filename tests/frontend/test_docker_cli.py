"""The real docker CLI against the frontend in front of a backend of local processes."""

from __future__ import annotations

import json

import pytest

from .conftest import DockerCLI
from .local_backend import LocalBackend

pytestmark = pytest.mark.docker_cli

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"


async def pulled(docker_cli: DockerCLI, image: str = IMAGE) -> str:
    result = await docker_cli("pull", image)
    assert result.code == 0, result.err
    return image


async def test_version_negotiates_api_1_44(docker_cli: DockerCLI) -> None:
    result = await docker_cli("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert result.code == 0, result.err
    assert result.out.split() == ["1.44", "1.44"]


async def test_info_decodes(docker_cli: DockerCLI) -> None:
    result = await docker_cli("info", "--format", "{{.OSType}} {{.Driver}} {{.LoggingDriver}}")
    assert result.code == 0, result.err
    assert result.out.split() == ["linux", "local", "json-file"]


async def test_run_prints_output_and_exits_with_the_containers_code(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    result = await docker_cli("run", IMAGE, "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert result.code == 3, result.err
    assert result.out == "hi\n"
    assert result.err == "oops\n"


async def test_run_rm_prints_output_exits_with_code_and_removes(
    docker_cli: DockerCLI, local_backend: LocalBackend
) -> None:
    await pulled(docker_cli)
    result = await docker_cli("run", "--rm", IMAGE, "sh", "-c", "seq 1 300; seq 1 50 >&2; exit 3")
    assert result.code == 3, result.err
    assert result.out == "".join(f"{i}\n" for i in range(1, 301))
    assert result.err == "".join(f"{i}\n" for i in range(1, 51))
    assert local_backend.store.containers() == []
    listed = await docker_cli("ps", "-a", "-q")
    assert listed.out == ""


async def test_run_pulls_a_missing_image_then_runs(docker_cli: DockerCLI) -> None:
    result = await docker_cli("run", "--rm", "alpine", "echo", "pulled")
    assert result.code == 0, result.err
    assert "Unable to find image 'alpine:latest' locally" in result.err
    assert result.out == "pulled\n"


async def test_run_of_an_image_that_cannot_be_pulled_fails_with_125(docker_cli: DockerCLI) -> None:
    result = await docker_cli("run", "--rm", "example.com/missing/app:1", "true")
    assert result.code == 125
    assert "repository does not exist" in result.err


async def test_run_with_tty_streams_raw_output(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    result = await docker_cli("run", "--rm", "-t", IMAGE, "sh", "-c", "echo tty")
    assert result.code == 0, result.err
    assert result.out.replace("\r", "") == "tty\n"


async def test_run_interactive_is_refused_with_a_message(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    result = await docker_cli("run", "-i", IMAGE, "cat")
    assert result.code == 125
    assert "Error response from daemon: This backend (local) does not support attaching stdin." in result.err
    assert (await docker_cli("ps", "-a", "-q")).out == ""


async def test_detached_run_then_wait_logs_and_remove(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    started = await docker_cli("run", "-d", "--name", "job", IMAGE, "sh", "-c", "echo one; echo two; exit 4")
    assert started.code == 0, started.err
    container_id = started.out.strip()
    assert len(container_id) == 64

    waited = await docker_cli("wait", "job")
    assert waited.out.strip() == "4"
    logs = await docker_cli("logs", "job")
    assert logs.out == "one\ntwo\n"
    tail = await docker_cli("logs", "--tail", "1", "job")
    assert tail.out == "two\n"
    stamped = await docker_cli("logs", "-t", "job")
    lines = stamped.out.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]
    assert all(line.split(" ", 1)[0].endswith("Z") for line in lines)
    followed = await docker_cli("logs", "-f", "job")
    assert followed.out == "one\ntwo\n"

    code = await docker_cli("inspect", "--format", "{{.State.ExitCode}} {{.State.Status}}", "job")
    assert code.out.split() == ["4", "exited"]
    removed = await docker_cli("rm", "job")
    assert removed.code == 0, removed.err
    gone = await docker_cli("inspect", "job")
    assert gone.code == 1
    assert "No such object: job" in gone.err


async def test_logs_follow_streams_until_the_container_exits(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    started = await docker_cli("run", "-d", IMAGE, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done")
    followed = await docker_cli("logs", "-f", started.out.strip())
    assert followed.code == 0, followed.err
    assert followed.out == "1\n2\n3\n"


async def test_ps_filters_by_label_and_shows_docker_statuses(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    await docker_cli("run", "-d", "--label", "team=a", "--name", "a1", IMAGE, "true")
    await docker_cli("run", "-d", "--label", "team=b", "--name", "b1", IMAGE, "true")
    await docker_cli("wait", "a1", "b1")
    result = await docker_cli("ps", "-a", "--filter", "label=team=a", "--format", "{{.Names}} {{.Status}}")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [line for line in result.out.splitlines() if line.startswith("a1 ")]
    assert result.out.startswith("a1 Exited (0)")
    running = await docker_cli("ps", "-q")
    assert running.out == ""


async def test_stop_kill_and_force_remove(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    await docker_cli("run", "-d", "--name", "sleeper", IMAGE, "sleep", "30")
    listed = await docker_cli("ps", "--format", "{{.Names}} {{.State}}")
    assert listed.out.split() == ["sleeper", "running"]
    assert (await docker_cli("kill", "sleeper")).code == 0
    killed = await docker_cli("inspect", "--format", "{{.State.ExitCode}}", "sleeper")
    assert killed.out.strip() == "137"
    stopped_again = await docker_cli("stop", "sleeper")
    assert stopped_again.code == 0, stopped_again.err  # 304 counts as success
    assert (await docker_cli("rm", "-f", "sleeper")).code == 0
    assert (await docker_cli("rm", "-f", "sleeper")).code == 0  # a missing container is fine with -f


async def test_exec_answers_the_capability_message(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    await docker_cli("run", "-d", "--name", "target", IMAGE, "sleep", "30")
    result = await docker_cli("exec", "target", "ls")
    assert result.code == 1
    assert result.err.strip() == (
        "Error response from daemon: This backend (local) does not support exec. "
        "CI runners require exec-capable backends (ecs, cloudrun, aca, docker)."
    )
    await docker_cli("rm", "-f", "target")


async def test_network_and_volume_commands_answer_501(docker_cli: DockerCLI) -> None:
    networks = await docker_cli("network", "ls")
    assert networks.code == 1
    assert "This backend (local) does not support networks." in networks.err
    volumes = await docker_cli("volume", "create", "data")
    assert volumes.code == 1
    assert "This backend (local) does not support volumes." in volumes.err


async def test_inspect_template_reads_config_and_host_config(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    await docker_cli("create", "--name", "c1", "-e", "A=1", IMAGE, "true")
    result = await docker_cli(
        "inspect", "--format", "{{.Config.Image}} {{.HostConfig.LogConfig.Type}} {{json .Config.Env}}", "c1"
    )
    assert result.code == 0, result.err
    image, log_type, env = result.out.split(" ", 2)
    assert (image, log_type, json.loads(env)) == (IMAGE, "json-file", ["A=1"])


async def test_name_conflict_is_reported_by_the_cli(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    assert (await docker_cli("create", "--name", "dup", IMAGE, "true")).code == 0
    again = await docker_cli("create", "--name", "dup", IMAGE, "true")
    assert again.code == 1
    assert 'The container name "/dup" is already in use' in again.err


async def test_start_attach_shows_the_new_run_only(docker_cli: DockerCLI) -> None:
    await pulled(docker_cli)
    await docker_cli("create", "--name", "again", IMAGE, "sh", "-c", "echo run; exit 2")
    first = await docker_cli("start", "-a", "again")
    assert (first.code, first.out) == (2, "run\n"), first.err
    second = await docker_cli("start", "-a", "again")
    assert (second.code, second.out) == (2, "run\n"), second.err
