"""The bootstrap's invocation payload v1 and what a bootstrap container's function is made of."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sockerless.errors import InvalidParameter
from sockerless.models import ContainerConfig, ContainerCreateRequest, HostConfig
from sockerless_lambda.bootstrap.payload import (
    BOOTSTRAP_ENTRYPOINT,
    BOOTSTRAP_LABEL,
    MAX_PAYLOAD_BYTES,
    build_payload,
    function_timeout,
    run_command,
    run_id,
    uses_bootstrap,
)
from sockerless_lambda.bootstrap.records import ExitRecord, durable_filter_pattern, parse_durable_line
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.functions import function_spec

CONTAINER = "4f1c" * 16
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:latest"


def _config(**fields: Any) -> ContainerConfig:
    return ContainerConfig(image=IMAGE, **fields)


def _spec(config: ContainerConfig, **settings: Any) -> Any:
    lambda_config = LambdaConfig(simulate=True, role_arn="arn:aws:iam::123456789012:role/r", **settings)
    request = ContainerCreateRequest(config=config, host_config=HostConfig())
    return function_spec(request, container_id=CONTAINER, name="c", instance_id="i", config=lambda_config)


def test_the_payload_carries_the_command_environment_and_directory() -> None:
    command = run_command(
        _config(entrypoint=["sh", "-c"], cmd=["echo hi"], env=["A=1", "B=x=y"], working_dir="/src"), CONTAINER
    )
    payload = json.loads(build_payload(command, container_id=CONTAINER, run=run_id(CONTAINER, 3)))
    assert payload == {
        "v": 1,
        "container": CONTAINER,
        "run": f"{CONTAINER}-3",
        "argv": ["sh", "-c", "echo hi"],
        "env": ["A=1", "B=x=y"],
        "workdir": "/src",
    }


def test_an_empty_entrypoint_runs_the_command_as_it_is() -> None:
    assert run_command(_config(entrypoint=[""], cmd=["true"]), CONTAINER).argv == ["true"]


def test_a_variable_without_a_value_sets_nothing() -> None:
    assert run_command(_config(cmd=["true"], env=["UNSET", "A=1"]), CONTAINER).env == ["A=1"]


def test_no_command_is_a_400() -> None:
    with pytest.raises(InvalidParameter, match="No command specified"):
        run_command(_config(), CONTAINER)


def test_a_relative_working_directory_is_a_400() -> None:
    with pytest.raises(InvalidParameter, match="absolute path"):
        run_command(_config(cmd=["true"], working_dir="src"), CONTAINER)


def test_a_payload_over_6_mb_is_a_400_at_create() -> None:
    big = ["X=" + "x" * (MAX_PAYLOAD_BYTES // 2)] * 2
    with pytest.raises(InvalidParameter, match="invocation payload"):
        _spec(_config(cmd=["true"], env=big), bootstrap=True)


def test_a_bootstrap_function_runs_the_bootstrap_and_no_environment() -> None:
    env = [f"VAR_{n}=" + "v" * 100 for n in range(100)] + ["AWS_REGION=mine"]  # > 4 KB, a reserved name
    spec = _spec(_config(cmd=["env"], env=env, working_dir="/w"), bootstrap=True, timeout=60)
    assert spec.bootstrap
    assert spec.params["ImageConfig"] == {"EntryPoint": [BOOTSTRAP_ENTRYPOINT]}
    assert "Environment" not in spec.params
    assert spec.params["Timeout"] == 61


def test_the_function_timeout_is_capped_at_900() -> None:
    assert function_timeout(900) == 900
    assert function_timeout(10) == 11


def test_the_label_chooses_over_the_setting() -> None:
    assert not _spec(_config(cmd=["true"], labels={BOOTSTRAP_LABEL: "false"}), bootstrap=True).bootstrap
    assert _spec(_config(cmd=["true"], labels={BOOTSTRAP_LABEL: "true"})).bootstrap
    assert _spec(_config(cmd=["true"])).bootstrap  # the default: the bootstrap
    assert not _spec(_config(cmd=["true"]), bootstrap=False).bootstrap
    assert uses_bootstrap(None, True)
    with pytest.raises(InvalidParameter, match=BOOTSTRAP_LABEL):
        uses_bootstrap({BOOTSTRAP_LABEL: "maybe"}, False)


def test_a_function_without_the_bootstrap_is_as_before() -> None:
    spec = _spec(
        _config(entrypoint=["sh"], cmd=["-c", "true"], env=["AB=1"], working_dir="/w"), bootstrap=False
    )
    assert spec.params["ImageConfig"] == {
        "EntryPoint": ["sh"],
        "Command": ["-c", "true"],
        "WorkingDirectory": "/w",
    }
    assert spec.params["Environment"] == {"Variables": {"AB": "1"}}


def test_a_container_without_a_command_runs_the_image_as_its_own_runtime_and_says_so() -> None:
    spec = _spec(_config())
    assert not spec.bootstrap
    assert "ImageConfig" not in spec.params  # Lambda runs the image's own ENTRYPOINT and CMD
    assert any("no command given" in warning for warning in spec.warnings)
    with pytest.raises(InvalidParameter, match="No command specified"):
        _spec(_config(labels={BOOTSTRAP_LABEL: "true"}))  # asked for: the bootstrap needs a command


def test_the_exit_record_gives_status_times_and_errors() -> None:
    record = ExitRecord.parse(
        json.dumps(
            {
                "v": 1,
                "status": 137,
                "reason": "timed out",
                "started": "2026-12-04T03:41:07.123456789Z",
                "finished": "2026-12-04T03:41:08Z",
                "stdout": {"bytes": 10, "kept": 4, "cut": True},
            }
        ).encode()
    )
    assert record.status == 137
    assert "timed out" in record.state_error(60)
    assert record.started is not None and record.started.microsecond == 123456
    assert record.cut_notes() == [
        b"[sockerless] stdout was cut: 6 of its 10 bytes are not kept (the output limit)\n"
    ]
    missing = ExitRecord.parse(
        b'{"status": 127, "reason": "not found", "error": "exec: \\"nope\\": not found"}'
    )
    assert missing.state_error(60) == 'cannot run the command: exec: "nope": not found'
    with pytest.raises(ValueError):
        ExitRecord.parse(b"{}")


def test_durable_lines_of_the_run_only() -> None:
    run = run_id(CONTAINER, 1)
    data = {
        "v": 1,
        "run": run,
        "seq": 0,
        "stream": "stderr",
        "offset": 5,
        "data": base64.b64encode(b"\xff").decode(),
    }
    line = parse_durable_line(json.dumps(data), run)
    assert line is not None and (line.stream, line.offset, line.data) == (2, 5, b"\xff")
    assert parse_durable_line(json.dumps({**data, "run": run + "0"}), run) is None
    assert parse_durable_line("START RequestId: x Version: $LATEST", run) is None
    exit_line = parse_durable_line(json.dumps({"v": 1, "run": run, "seq": 1, "exit": {"status": 3}}), run)
    assert exit_line is not None and exit_line.exit is not None and exit_line.exit.status == 3
    assert durable_filter_pattern(run) == '{ $.run = "' + run + '" }'
