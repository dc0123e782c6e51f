"""The lambda config section: defaults, layers (file < env < flags), the --simulate alias and every check."""

from __future__ import annotations

import argparse
from pathlib import Path

import botocore.session
import pytest

from sockerless.backend import BackendRuntime
from sockerless.config import (
    ConfigError,
    add_config_arguments,
    config_sections,
    flags_from_args,
    load_settings,
)
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.config import (
    MAX_SECURITY_GROUPS,
    MAX_SUBNETS,
    ROLE_ARN_PATTERN,
    SECURITY_GROUP_ID_PATTERN,
    SUBNET_ID_PATTERN,
    LambdaConfig,
)

ROLE = "arn:aws:iam::123456789012:role/exec"


def load(
    environ: dict[str, str] | None = None, argv: list[str] | None = None, file: str | None = None
) -> LambdaConfig:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, config_sections("lambda", LambdaConfig), LambdaBackend.cli_aliases)
    args = parser.parse_args(argv or [])
    settings = load_settings(
        backend_name="lambda",
        backend_section=LambdaConfig,
        config_file=file,
        environ=environ or {},
        flags=flags_from_args(args),
    )
    assert isinstance(settings.backend, LambdaConfig)
    return settings.backend


def problems(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**kwargs)  # type: ignore[arg-type]
    return "\n".join(caught.value.problems)


def test_defaults() -> None:
    config = load({"SOCKERLESS_LAMBDA_REGION": "eu-west-1", "SOCKERLESS_LAMBDA_ROLE_ARN": ROLE})
    assert (config.log_group, config.log_retention_days, config.memory_size, config.timeout) == (
        "/sockerless/lambda",
        30,
        1024,
        900,
    )
    assert (config.architecture, config.function_prefix, config.invocation_type) == (
        "x86_64",
        "skls-",
        "RequestResponse",
    )
    assert (config.max_concurrent_invocations, config.subnet_ids, config.simulate) == (200, [], False)


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    file = tmp_path / "config.yaml"
    file.write_text(
        f"lambda:\n  region: us-east-1\n  role_arn: {ROLE}\n"
        "  memory_size: 512\n  timeout: 60\n  subnet_ids: [subnet-0a, subnet-0b]\n"
        "  security_group_ids: [sg-1]\n"
    )
    config = load(
        {"SOCKERLESS_LAMBDA_MEMORY_SIZE": "2048", "SOCKERLESS_LAMBDA_TIMEOUT": "120"},
        ["--lambda-timeout", "30", "--lambda-invocation-type", "Event", "--no-lambda-bootstrap"],
        str(file),
    )
    assert (config.region, config.memory_size, config.timeout, config.invocation_type) == (
        "us-east-1",
        2048,
        30,
        "Event",
    )
    assert config.subnet_ids == ["subnet-0a", "subnet-0b"]


def test_event_mode_with_the_bootstrap_stops_start_up_with_the_reason() -> None:
    # The bootstrap answers in the response of a RequestResponse call, which Event does not wait for.
    text = problems(argv=["--simulate", "--lambda-invocation-type", "Event"])
    assert "lambda.invocation_type Event needs lambda.bootstrap false" in text
    assert load(argv=["--simulate", "--lambda-invocation-type", "Event", "--no-lambda-bootstrap"])


def test_region_and_role_are_required_unless_simulated() -> None:
    text = problems()
    assert "lambda.region is required" in text
    assert "lambda.role_arn is required" in text
    assert load(argv=["--simulate"]).simulate is True


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SOCKERLESS_LAMBDA_MEMORY_SIZE": "64"}, "lambda.memory_size: 64 is out of range (128-10240)"),
        ({"SOCKERLESS_LAMBDA_TIMEOUT": "901"}, "lambda.timeout: 901 is out of range (1-900)"),
        (
            {"SOCKERLESS_LAMBDA_ARCHITECTURE": "mips"},
            "lambda.architecture: 'mips' is not one of x86_64, arm64",
        ),
        ({"SOCKERLESS_LAMBDA_INVOCATION_TYPE": "DryRun"}, "lambda.invocation_type: 'DryRun' is not one of"),
        (
            {"SOCKERLESS_LAMBDA_MAX_CONCURRENT_INVOCATIONS": "0"},
            "lambda.max_concurrent_invocations: 0 is out of range",
        ),
        ({"SOCKERLESS_LAMBDA_LOG_RETENTION_DAYS": "2"}, "lambda.log_retention_days: 2 is not one of"),
        ({"SOCKERLESS_LAMBDA_LOG_GROUP": "aws/lambda/x"}, "lambda.log_group 'aws/lambda/x' is invalid"),
        ({"SOCKERLESS_LAMBDA_LOG_GROUP": "/aws/lambda/x"}, "lambda.log_group '/aws/lambda/x' is invalid"),
        ({"SOCKERLESS_LAMBDA_FUNCTION_PREFIX": "x" * 41}, "lambda.function_prefix"),
        ({"SOCKERLESS_LAMBDA_FUNCTION_PREFIX": "bad.prefix"}, "only [A-Za-z0-9_-]"),
        (
            {"SOCKERLESS_LAMBDA_SECURITY_GROUP_IDS": "sg-1"},
            "lambda.security_group_ids needs lambda.subnet_ids",
        ),
        ({"SOCKERLESS_LAMBDA_SUBNET_IDS": "subnet-1"}, "lambda.subnet_ids needs lambda.security_group_ids"),
        (
            {
                "SOCKERLESS_LAMBDA_SUBNET_IDS": "subnet-1,net-2",
                "SOCKERLESS_LAMBDA_SECURITY_GROUP_IDS": "sg-1",
            },
            "lambda.subnet_ids: 'net-2' do not match subnet-[0-9a-z]*",
        ),
        (
            {"SOCKERLESS_LAMBDA_SUBNET_IDS": "subnet-1", "SOCKERLESS_LAMBDA_SECURITY_GROUP_IDS": "sg_1"},
            "lambda.security_group_ids: 'sg_1' do not match",
        ),
        (
            {
                "SOCKERLESS_LAMBDA_SUBNET_IDS": ",".join(f"subnet-{i}" for i in range(17)),
                "SOCKERLESS_LAMBDA_SECURITY_GROUP_IDS": "sg-1",
            },
            "lambda.subnet_ids: 17 given, Lambda allows at most 16",
        ),
        (
            {
                "SOCKERLESS_LAMBDA_SUBNET_IDS": "subnet-1",
                "SOCKERLESS_LAMBDA_SECURITY_GROUP_IDS": ",".join(f"sg-{i}" for i in range(6)),
            },
            "lambda.security_group_ids: 6 given, Lambda allows at most 5",
        ),
        ({"SOCKERLESS_LAMBDA_ROLE_ARN": "exec-role"}, "lambda.role_arn 'exec-role' is not an IAM role ARN"),
        (
            {"SOCKERLESS_LAMBDA_ROLE_ARN": "arn:aws:iam::12345:role/exec"},
            "lambda.role_arn 'arn:aws:iam::12345:role/exec' is not an IAM role ARN",
        ),
    ],
)
def test_invalid_values_are_reported_with_their_key(environ, expected) -> None:
    assert expected in problems(
        environ={"SOCKERLESS_LAMBDA_REGION": "r", "SOCKERLESS_LAMBDA_ROLE_ARN": ROLE, **environ}
    )


def test_the_vpc_and_role_patterns_are_those_of_botocore_s_lambda_model() -> None:
    model = botocore.session.get_session().get_service_model("lambda")
    assert [
        model.shape_for(name).metadata["pattern"] for name in ("RoleArn", "SubnetId", "SecurityGroupId")
    ] == [
        ROLE_ARN_PATTERN,
        SUBNET_ID_PATTERN,
        SECURITY_GROUP_ID_PATTERN,
    ]
    assert [model.shape_for(name).metadata["max"] for name in ("SubnetIds", "SecurityGroupIds")] == [
        MAX_SUBNETS,
        MAX_SECURITY_GROUPS,
    ]


def test_a_valid_vpc_config_loads() -> None:
    config = load(
        {
            "SOCKERLESS_LAMBDA_SIMULATE": "1",
            "SOCKERLESS_LAMBDA_SUBNET_IDS": "subnet-0123456789abcdef0",
            "SOCKERLESS_LAMBDA_SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
        }
    )
    assert (config.subnet_ids, config.security_group_ids) == (
        ["subnet-0123456789abcdef0"],
        ["sg-0123456789abcdef0"],
    )


def test_a_prefix_of_40_characters_still_fits_lambdas_64() -> None:
    config = load({"SOCKERLESS_LAMBDA_SIMULATE": "1", "SOCKERLESS_LAMBDA_FUNCTION_PREFIX": "p" * 40})
    assert len(config.function_prefix) + 24 == 64


async def test_simulate_starts_an_embedded_simulator_and_runs_containers(tmp_path: Path, monkeypatch) -> None:
    from sockerless.models import ContainerConfig, ContainerCreateRequest, WaitCondition

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    backend = LambdaBackend(
        LambdaConfig(simulate=True, prepare_images=False), BackendRuntime(str(tmp_path / "s.sqlite3"), "sim")
    )
    await backend.start()
    try:
        assert backend.simulator is not None
        assert backend.config.endpoint_url is None and backend.config.region == backend.simulator.region
        created = await backend.create_container(
            ContainerCreateRequest(config=ContainerConfig(image="repo:tag", cmd=["sh", "-c", "exit 5"])), None
        )
        waiting = await backend.wait_container(created.id, WaitCondition.NEXT_EXIT)
        await backend.start_container(created.id)
        assert (await waiting).status_code == 5
    finally:
        await backend.close()
    assert backend.simulator is None


def test_the_readme_configuration_table_is_the_generated_one() -> None:
    from sockerless.config import reference_markdown

    readme = (Path(__file__).parents[2] / "backends" / "lambda" / "README.md").read_text()
    table = reference_markdown({"lambda": LambdaConfig}).split("\n", 2)[2].strip()
    assert table in readme, (
        "regenerate the table in backends/lambda/README.md (command in the comment above it)"
    )
