"""Launching a function's command on this machine: its argv, its environment, Init in Lambda's model.

The simulator does not pull images: the function's ImageConfig command (or the sockerless bootstrap from
the package, when that command is the image's bootstrap) runs here, without isolation."""

from __future__ import annotations

import importlib
import logging
import os
import time
import uuid
from collections.abc import Mapping

from attrs import define

from .environments import BOOTSTRAP_IMAGE_PATH, ExecutionEnvironment
from .functions import FunctionConfig
from .operations import AwsScope
from .records import Failure, Records, failure_of, iso_now, no_reason, process_outcome
from .runtime import ProcessOutcome, ProcessSpec, run_process

log = logging.getLogger(__name__)


@define
class DirectEnvironment:
    """A warm execution environment: here, one log stream reused by consecutive invocations."""

    group: str
    stream: str
    generation: int
    stream_exists: bool = False


class Launcher:
    """Starts a function's command: one process per invocation (direct model) or a runtime (Init)."""

    def __init__(
        self, base_environment: Mapping[str, str], bootstrap_binaries: Mapping[str, str] | None
    ) -> None:
        self._base_environment = dict(base_environment)
        self._bootstrap_binaries = dict(bootstrap_binaries) if bootstrap_binaries is not None else None
        self._warned_images: set[str] = set()
        self._warned_functions: set[tuple[str, str]] = set()

    async def run_direct(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        payload: bytes,
        environment: DirectEnvironment,
        records: Records,
    ) -> ProcessOutcome | None:
        if not config.argv:
            log.warning(
                "function %s has no ImageConfig EntryPoint or Command: the simulator does not read the "
                "image, so it has nothing to run and fails the invocation",
                config.name,
            )
            return None
        self._warn_not_pulled(config)
        spec = ProcessSpec(
            argv=config.argv,
            env=self._child_environment(scope, config, environment),
            stdin=payload,
            timeout_seconds=float(config.timeout_seconds),
            cwd=host_directory(config.working_directory),
        )
        return await run_process(spec, records.output)

    async def init(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        environment: ExecutionEnvironment,
        timeout: float,
        request_id: str,
        *,
        in_invoke: bool = False,
    ) -> tuple[float, Failure | None]:
        """Start the runtime and wait until it asks for an invocation: (Init duration in ms, failure)."""
        request_prefix = f"RequestId: {request_id} Error: "
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000.0

        if not config.argv:
            # Lambda would start the image's own ENTRYPOINT/CMD; the simulator does not pull images, so it
            # cannot: an entrypoint error that says why, never a run that seems to have succeeded.
            problem = (
                "the simulator does not pull images, so it cannot run the image's own ENTRYPOINT/CMD "
                f"({config.image_uri}): give the function an ImageConfig EntryPoint or Command"
            )
            log.warning("function %s: %s", config.name, problem)
            return elapsed(), Failure(
                "Runtime.InvalidEntrypoint", request_prefix + problem, f"{request_prefix}{problem}"
            )
        argv, problem = self._runtime_argv(config)
        if argv is None:
            return elapsed(), Failure(
                "Runtime.InvalidEntrypoint", request_prefix + problem, f"{request_prefix}{problem}"
            )
        env = self._child_environment(scope, config, environment)
        env.update(
            AWS_LAMBDA_RUNTIME_API=environment.runtime_api,
            TMPDIR=environment.tmp_dir,
            SOCKERLESS_BOOTSTRAP_TMP_DIR=environment.tmp_dir,
        )
        spawn_problem = environment.spawn(argv, env, host_directory(config.working_directory))
        if spawn_problem is not None:
            return elapsed(), Failure(
                "Runtime.InvalidEntrypoint",
                request_prefix + spawn_problem,
                f"{request_prefix}{spawn_problem}",
            )
        state = await environment.wait_init(timeout)
        if state == "ready":
            return elapsed(), None
        status = await environment.stop_process()
        if state == "error" and environment.init_error is not None:
            error_type, body = environment.init_error
            return elapsed(), Failure(error_type, "", "", body)
        if state == "timeout":
            if in_invoke:
                after = f"Task timed out after {config.timeout_seconds:.2f} seconds"
                return elapsed(), Failure(
                    "Sandbox.Timedout", request_prefix + after, f"{iso_now()} {request_id} {after}"
                )
            return elapsed(), Failure(
                "Runtime.InitTimeout", f"{request_prefix}Init timed out after {timeout:.2f} seconds", ""
            )
        failure = failure_of(config, request_id, process_outcome(status, False, 0.0, 0)) or no_reason(
            request_id
        )
        return elapsed(), failure

    def _warn_not_pulled(self, config: FunctionConfig) -> None:
        """Once per image: its command runs here, not in the image."""
        if config.image_uri not in self._warned_images:
            self._warned_images.add(config.image_uri)
            log.warning(
                "image %s is NOT pulled: the simulator runs the function's ImageConfig command "
                "(%s) directly on this machine, without isolation",
                config.image_uri,
                " ".join(config.argv),
            )

    def _runtime_argv(self, config: FunctionConfig) -> tuple[tuple[str, ...] | None, str]:
        """The command that starts the function's runtime here, or None and why it cannot start."""
        if config.argv[0] != BOOTSTRAP_IMAGE_PATH:
            self._warn_not_pulled(config)
            return config.argv, ""
        binary = self._bootstrap_binary(config.architecture)
        if binary is None:
            return None, (
                f"{BOOTSTRAP_IMAGE_PATH}: no bootstrap binary for {config.architecture} on this machine: "
                "build it with ./dev setup (or give the simulator's bootstrap_binaries setting)"
            )
        if (config.name, config.version) not in self._warned_functions:
            self._warned_functions.add((config.name, config.version))
            log.warning(
                "function %s: image %s is NOT pulled: its entrypoint %s is the sockerless bootstrap, so "
                "the bootstrap from the package (%s) runs on this machine, without isolation",
                config.name,
                config.image_uri,
                BOOTSTRAP_IMAGE_PATH,
                binary,
            )
        return (binary, *config.argv[1:]), ""

    def _bootstrap_binary(self, architecture: str) -> str | None:
        if self._bootstrap_binaries is not None:
            path = self._bootstrap_binaries.get(architecture)
            return path if path and os.path.isfile(path) else None
        try:
            # The backend's package is optional: the simulator runs without it.
            bootstrap = importlib.import_module("sockerless_lambda.bootstrap")
        except ImportError:
            return None
        try:
            return str(bootstrap.binary_path(architecture))
        except (FileNotFoundError, ValueError):
            return None

    def _child_environment(
        self, scope: AwsScope, config: FunctionConfig, environment: DirectEnvironment | ExecutionEnvironment
    ) -> dict[str, str]:
        env = {**self._base_environment, **config.environment}
        # Lambda's reserved variables win over the function's (real Lambda rejects them at create).
        env.update(
            AWS_REGION=scope.region,
            AWS_DEFAULT_REGION=scope.region,
            AWS_LAMBDA_FUNCTION_NAME=config.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config.memory_mb),
            AWS_LAMBDA_FUNCTION_VERSION=config.version,
            AWS_LAMBDA_LOG_GROUP_NAME=environment.group,
            AWS_LAMBDA_LOG_STREAM_NAME=environment.stream,
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_ACCESS_KEY_ID=scope.access_key,
        )
        if config.log_format == "JSON":
            env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
        return env


def host_directory(path: str | None) -> str | None:
    """The image's WorkingDirectory when this machine has it (a stat: cheap), else ``None``."""
    return path if path and os.path.isdir(path) else None


def trace_id() -> str:
    """An X-Ray trace header as Lambda passes it (``Lambda-Runtime-Trace-Id``); not sampled."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
