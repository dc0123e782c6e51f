"""Lambda functions: a container create request checked against Lambda's limits and turned into
``CreateFunction`` parameters before any AWS call, and their deletion.

Lambda (and moto, which checks almost nothing) would accept or reject these only after a round
trip; checking here answers 400 at once with a message saying what to change.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from sockerless.errors import InvalidParameter, NotFound, NotImplementedByBackend, SockerlessError
from sockerless.models import ContainerConfig, ContainerCreateRequest
from sockerless_lambda.aws import AwsClients, call
from sockerless_lambda.bootstrap.payload import (
    BOOTSTRAP_ENTRYPOINT,
    BOOTSTRAP_LABEL,
    function_timeout,
    run_command,
    uses_bootstrap,
)
from sockerless_lambda.config import FUNCTION_ID_LENGTH, LambdaConfig
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.images import lambda_image_uri

__all__ = [
    "ENV_TOTAL_LIMIT",
    "MANAGED_TAG",
    "MAX_TAGS",
    "RESERVED_ENV_KEYS",
    "FunctionSpec",
    "create_function",
    "delete_function",
    "function_name_for",
    "function_spec",
    "validate_container_name",
]

#: Environment: the JSON of the variables map, in bytes (Lambda's 4 KB limit).
ENV_TOTAL_LIMIT = 4096
_ENV_KEY = re.compile(r"[a-zA-Z]([a-zA-Z0-9_])+")
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip
MEMORY_MIN_MB, MEMORY_MAX_MB = 128, 10240
_MIB = 1024 * 1024
_WORKDIR_MAX = 1000
# ImageConfig.EntryPoint and .Command: at most 1500 items each (botocore's StringList shape).
_ARGV_MAX = 1500
# CreateFunction Description: 0-256 characters.
_DESCRIPTION_MAX = 256

#: Lambda tag limits: 50 per function, key <= 128, value <= 256, no "aws:" prefix, a small alphabet.
MAX_TAGS = 50
_TAG_KEY_MAX, _TAG_VALUE_MAX = 128, 256
_TAG_MARKS = frozenset("_.:/=+-@")
MANAGED_TAG = "sockerless:managed"
CONTAINER_ID_TAG = "sockerless:container-id"
NAME_TAG = "sockerless:name"
INSTANCE_TAG = "sockerless:instance"

# Docker's container-name rule; the length cap keeps the name usable as a tag value.
_CONTAINER_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")


@frozen
class FunctionSpec:
    """The ``CreateFunction`` parameters of one container and what create reports back."""

    name: str
    params: dict[str, Any]
    warnings: list[str]
    memory_mb: int
    #: The function's entrypoint is the bootstrap: the command goes in each invocation's payload.
    bootstrap: bool = False


async def create_function(clients: AwsClients, spec: FunctionSpec, config: LambdaConfig) -> dict[str, Any]:
    """CreateFunction (and, for ``Event`` invocations, no retries of a failed run and a bounded
    wait in Lambda's queue); the answer.

    Lambda retries a failed Event invocation twice by default (a container runs once) and keeps an
    event queued up to 6 hours by default: ``lambda.event_max_age`` bounds it by the backend's own
    wait, so a run cannot start after its container was given up. A function created but not
    configured so is deleted again, and the error raised.
    """
    created = await call(
        AwsOperation("lambda", "CreateFunction", "create function", spec.name),
        clients.control.create_function,
        **spec.params,
    )
    if config.invocation_type == "Event":
        try:
            await call(
                AwsOperation("lambda", "PutFunctionEventInvokeConfig", "configure async invoke", spec.name),
                clients.control.put_function_event_invoke_config,
                FunctionName=spec.name,
                MaximumRetryAttempts=0,
                MaximumEventAgeInSeconds=config.event_max_age,
            )
        except SockerlessError:
            await delete_function(clients, spec.name)
            raise
    return dict(created)


async def delete_function(clients: AwsClients, function_name: str) -> None:
    """DeleteFunction; a function already gone is fine."""
    with contextlib.suppress(NotFound):
        await call(
            AwsOperation("lambda", "DeleteFunction", "delete function", function_name),
            clients.control.delete_function,
            FunctionName=function_name,
        )


def function_name_for(container_id: str, config: LambdaConfig) -> str:
    return config.function_prefix + container_id[:FUNCTION_ID_LENGTH]


def validate_container_name(name: str) -> str:
    """The name without its leading '/'; InvalidParameter when Docker or a Lambda tag would refuse it."""
    if not _CONTAINER_NAME.fullmatch(name) or len(name.lstrip("/")) > _TAG_VALUE_MAX:
        raise InvalidParameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed "
            f"(at most {_TAG_VALUE_MAX} characters)"
        )
    return name.lstrip("/")


def _description(name: str) -> str:
    """Lambda's Description holds at most 256 characters; a long container name is shortened."""
    text = f"sockerless container /{name}"
    return text if len(text) <= _DESCRIPTION_MAX else text[: _DESCRIPTION_MAX - 3] + "..."


def function_spec(
    request: ContainerCreateRequest,
    *,
    container_id: str,
    name: str,
    instance_id: str,
    config: LambdaConfig,
    bootstrap: bool | None = None,
) -> FunctionSpec:
    """Check ``request`` against Lambda's limits and build the function; InvalidParameter on any violation.

    ``bootstrap``: whether the function runs the bootstrap (None: as the container's label or
    ``lambda.bootstrap`` says); then the command, environment and working directory are checked as
    the payload carries them, not against the function configuration's limits."""
    cfg, host = request.config, request.host_config
    if not cfg.image:
        raise InvalidParameter(
            "invalid container: Image is required (an image URI Lambda can pull, e.g. ECR)"
        )
    if host.binds or host.mounts or host.volumes_from:
        raise NotImplementedByBackend.for_operation(
            "lambda", "volumes", "Remove -v/--mount from the container."
        )
    mode = host.network_mode
    if mode not in _LAMBDA_NETWORK_MODES:
        raise NotImplementedByBackend.for_operation(
            "lambda",
            "networks",
            f"Remove --network {mode}: each run has Lambda's own network "
            "(in a VPC when subnet_ids are configured).",
        )
    own_runtime = False
    if bootstrap is None:
        bootstrap = uses_bootstrap(cfg.labels, config.bootstrap)
        # No command, and no label asking for the bootstrap: the image's own ENTRYPOINT and CMD are
        # what Docker runs, and only Lambda knows them (it reads the image), so the image runs as its
        # own runtime, the way an image that implements the Runtime API does.
        if bootstrap and not _has_command(cfg) and BOOTSTRAP_LABEL not in (cfg.labels or {}):
            bootstrap, own_runtime = False, True
    env: dict[str, str] = {}
    image_config: dict[str, Any] = {}
    if bootstrap and config.invocation_type == "Event":
        raise InvalidParameter(
            f"label {BOOTSTRAP_LABEL}=true cannot be used with lambda.invocation_type Event: the bootstrap "
            "answers in the response of a RequestResponse call"
        )
    if bootstrap:
        # The command, environment and working directory go in each invocation's payload.
        run_command(cfg, container_id)
        image_config["EntryPoint"] = [BOOTSTRAP_ENTRYPOINT]
        if not config.response_streaming:
            env = {"SOCKERLESS_BOOTSTRAP_RESPONSE_MODE": "buffered"}
    else:
        env = _checked_env(cfg.env_dict())
    memory_mb = _memory_mb(host.memory, config.memory_size)
    warnings = not_applied(request)
    if own_runtime:
        warnings.append(
            "no command given: the image's own ENTRYPOINT/CMD run as the function's runtime, without "
            f"the sockerless bootstrap (output from CloudWatch; set {BOOTSTRAP_LABEL}=false to say so, "
            "or give a command to run it through the bootstrap)"
        )
    # A function on the bootstrap is shared by its image configuration (see .shared_functions): the
    # labels of one of its containers are not its tags.
    tags = _tags(container_id, name, instance_id, {} if bootstrap else cfg.labels or {}, warnings)
    if not bootstrap:
        image_config.update(_image_config(cfg))
    function_name = function_name_for(container_id, config)
    params: dict[str, Any] = {
        "FunctionName": function_name,
        "Role": config.role_arn,
        "PackageType": "Image",
        # In Lambda's form also when the function is created again from the stored request.
        "Code": {"ImageUri": lambda_image_uri(cfg.image)},
        "Description": _description(name),
        "MemorySize": memory_mb,
        "Timeout": function_timeout(config.timeout) if bootstrap else config.timeout,
        "Architectures": [config.architecture],
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": config.log_group},
        "Tags": tags,
    }
    if image_config:
        params["ImageConfig"] = image_config
    if env:
        params["Environment"] = {"Variables": env}
    if config.subnet_ids:
        params["VpcConfig"] = {
            "SubnetIds": list(config.subnet_ids),
            "SecurityGroupIds": list(config.security_group_ids),
        }
    return FunctionSpec(
        name=function_name, params=params, warnings=warnings, memory_mb=memory_mb, bootstrap=bootstrap
    )


def _has_command(cfg: ContainerConfig) -> bool:
    entrypoint = [] if cfg.entrypoint == [""] else list(cfg.entrypoint or [])
    return bool(entrypoint or cfg.cmd)


def _image_config(cfg: ContainerConfig) -> dict[str, Any]:
    """ImageConfig of a function that runs the container's command itself (not the bootstrap)."""
    image_config: dict[str, Any] = {}
    entrypoint, command = _argv(cfg.entrypoint, cfg.cmd)
    for key, argv in (("EntryPoint", entrypoint), ("Command", command)):
        if not argv:
            continue
        if len(argv) > _ARGV_MAX:
            docker_name = "Entrypoint" if key == "EntryPoint" else "Cmd"
            raise InvalidParameter(
                f"invalid {docker_name}: {len(argv)} items; Lambda accepts at most {_ARGV_MAX}"
            )
        image_config[key] = list(argv)
    if cfg.working_dir:
        if len(cfg.working_dir) > _WORKDIR_MAX or not cfg.working_dir.startswith("/"):
            raise InvalidParameter(
                f"invalid WorkingDir {cfg.working_dir!r}: Lambda needs an absolute path "
                f"of at most {_WORKDIR_MAX} characters"
            )
        image_config["WorkingDirectory"] = cfg.working_dir
    return image_config


#: ``HostConfig.NetworkMode`` values a create may carry: Docker's defaults, and two that are
#: accepted with a warning (the run gets Lambda's network whatever they ask).
_LAMBDA_NETWORK_MODES = frozenset({"", "default", "bridge", "host", "none"})


def not_applied(request: ContainerCreateRequest) -> list[str]:
    """Warnings (Docker's create ``Warnings``, which the CLI prints) for settings a Lambda run cannot
    honour but can run without: the container is created, and the user is told what is dropped."""
    cfg, host = request.config, request.host_config
    warnings: list[str] = []
    if host.port_bindings or host.publish_all_ports:
        warnings.append("published ports are discarded: a Lambda function accepts no inbound connections")
    if host.network_mode in ("host", "none"):
        warnings.append(
            f"--network {host.network_mode} is not applied: the run has Lambda's network, with outbound "
            "access (within the VPC when subnet_ids are configured)"
        )
    restart = str((host.restart_policy or {}).get("Name") or "no")
    if restart != "no":
        warnings.append(f"restart policy {restart!r} is not applied: Lambda does not restart a run that ends")
    privileges = _given(
        ("--privileged", host.privileged),
        ("--cap-add", host.cap_add),
        ("--cap-drop", host.cap_drop),
        ("--device", host.devices),
        ("--security-opt", host.security_opt),
        ("--sysctl", host.sysctls),
    )
    if privileges:
        warnings.append(f"{', '.join(privileges)} not applied: Lambda sets a function's privileges itself")
    if host.nano_cpus or host.cpu_shares or host.cpu_quota or host.cpu_period or host.cpuset_cpus:
        warnings.append(
            "CPU limits are not applied: Lambda allots CPU in proportion to the memory (--memory)"
        )
    if host.dns or host.dns_search or host.dns_options or host.extra_hosts:
        warnings.append("--dns, --dns-search, --dns-option and --add-host are not applied on Lambda")
    runtime = _given(
        ("--init", host.init),
        ("--read-only", host.readonly_rootfs),
        ("--tmpfs", host.tmpfs),
        ("--ulimit", host.ulimits),
        ("--pids-limit", host.pids_limit and host.pids_limit > 0),
        ("--shm-size", host.shm_size),
        ("--ipc", host.ipc_mode not in ("", "private", "shareable")),
        ("--pid", host.pid_mode),
        ("--uts", host.uts_mode),
    )
    if runtime:
        warnings.append(
            f"{', '.join(runtime)} not applied: Lambda runs the process in its own sandbox "
            "(a read-only file system but for /tmp, its own limits and namespaces)"
        )
    identity = _given(("--user", cfg.user), ("--hostname", cfg.hostname))
    if identity:
        warnings.append(
            f"{', '.join(identity)} not applied: Lambda has no setting for a function's user or host "
            "name (the run has Lambda's own)"
        )
    test = cfg.healthcheck.get("Test") if isinstance(cfg.healthcheck, dict) else None
    if test and test != ["NONE"]:
        warnings.append("the health check is not run: Lambda has no health checks")
    return warnings


def _argv(entrypoint: list[str] | None, cmd: list[str] | None) -> tuple[list[str], list[str]]:
    """``ImageConfig``'s EntryPoint and Command for Docker's Entrypoint and Cmd.

    ``--entrypoint ""`` (Entrypoint ``[""]``) means "no entrypoint" in Docker: the command runs as it
    is. Lambda has no way to clear an image's ENTRYPOINT but to set another, so the command becomes
    the EntryPoint (sending ``[""]`` would make Lambda run an empty program: exit 127).
    """
    if entrypoint == [""]:
        if not cmd:
            # Docker's own answer when neither an entrypoint nor a command is left.
            raise InvalidParameter("No command specified")
        return list(cmd), []
    return list(entrypoint or []), list(cmd or [])


def _given(*flags: tuple[str, object]) -> list[str]:
    """The docker flags among ``flags`` whose setting is not the default (a truthy value)."""
    return [flag for flag, value in flags if value]


def _checked_env(env: Mapping[str, str]) -> dict[str, str]:
    bad = sorted(key for key in env if not _ENV_KEY.fullmatch(key))
    if bad:
        raise InvalidParameter(
            f"invalid environment variable name(s) {', '.join(bad)}: Lambda needs [a-zA-Z][a-zA-Z0-9_]+"
        )
    reserved = sorted(key for key in env if key in RESERVED_ENV_KEYS)
    if reserved:
        raise InvalidParameter(f"environment variable(s) {', '.join(reserved)} are reserved by Lambda")
    # Lambda measures the variables map as the JSON it receives, quotes, separators and escapes included,
    # so many short variables reach the limit well before their names and values alone do.
    total = len(json.dumps(dict(env), separators=(",", ":"), ensure_ascii=False).encode())
    if total > ENV_TOTAL_LIMIT:
        raise InvalidParameter(
            f"environment too large: {total} bytes as JSON (names, values, quotes and separators), "
            f"Lambda allows {ENV_TOTAL_LIMIT}"
        )
    return dict(env)


def _memory_mb(memory_bytes: int, default_mb: int) -> int:
    if memory_bytes <= 0:
        return default_mb
    memory_mb = math.ceil(memory_bytes / _MIB)
    if not MEMORY_MIN_MB <= memory_mb <= MEMORY_MAX_MB:
        raise InvalidParameter(
            f"invalid memory limit {memory_mb} MB: Lambda allows {MEMORY_MIN_MB}-{MEMORY_MAX_MB} MB"
        )
    return memory_mb


def _tags(
    container_id: str, name: str, instance_id: str, labels: Mapping[str, str], warnings: list[str]
) -> dict[str, str]:
    """Our marking tags, plus each of the user's labels that fits Lambda's tag rules.

    Labels stay the container's labels either way (the store keeps them); copying them to the
    function is a convenience for whoever browses the AWS console, never worth failing a create for:
    a label Lambda would refuse as a tag is left out, and a warning names it.
    """
    tags = {
        MANAGED_TAG: "true",
        CONTAINER_ID_TAG: container_id,
        NAME_TAG: name,
        INSTANCE_TAG: instance_id[:256],
    }
    own = len(tags)
    broken: list[str] = []
    over: list[str] = []
    for key, value in labels.items():
        if _tag_problem(key, value, taken=key in tags):
            broken.append(key)
        elif len(tags) >= MAX_TAGS:
            over.append(key)
        else:
            tags[key] = value
    if broken:
        warnings.append(
            f"labels not copied to the Lambda function's tags: {', '.join(sorted(broken))} break Lambda's "
            f"tag rules (key 1-{_TAG_KEY_MAX}, value at most {_TAG_VALUE_MAX} letters, digits, spaces or "
            "_.:/=+-@; no aws: prefix; not a sockerless: tag)"
        )
    if over:
        warnings.append(
            f"labels not copied to the Lambda function's tags: {', '.join(sorted(over))} would exceed "
            f"Lambda's {MAX_TAGS} tags per function ({own} of them "
            "sockerless's own)"
        )
    return tags


def _tag_problem(key: str, value: str, *, taken: bool) -> bool:
    return (
        taken
        or key.lower().startswith("aws:")
        or not 1 <= len(key) <= _TAG_KEY_MAX
        or len(value) > _TAG_VALUE_MAX
        or not _is_tag_text(key)
        or not _is_tag_text(value)
    )


def _is_tag_text(text: str) -> bool:
    r"""Lambda's tag pattern ``[\p{L}\p{Z}\p{N}_.:/=+\-@]*``: letters, separators (spaces), numbers
    and a few marks. Python's ``\s`` would also admit control characters (tab, newline) AWS refuses."""
    return all(char in _TAG_MARKS or unicodedata.category(char)[0] in "LZN" for char in text)
