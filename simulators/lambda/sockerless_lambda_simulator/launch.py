"""Launching a function's command: its argv, its environment, Init in Lambda's model.

An image of the simulator's ECR is pulled and its command runs inside the image's root filesystem
(:mod:`.isolation`), with the image's config under the function's ImageConfig. Any other image is not
pulled: the function's ImageConfig command (or the sockerless bootstrap from the package, when that
command is the image's bootstrap) runs on this machine, without isolation, as it does when an image of
the registry cannot be fetched or this machine cannot enter a root filesystem; the function's log and
the simulator's say so."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping

from attrs import define, frozen

from .environments import BOOTSTRAP_IMAGE_PATH, ExecutionEnvironment
from .functions import FunctionConfig
from .images import EcrImages, ImageConfig, ImageProblem, PulledImage
from .isolation import DEFAULT_PATH, Isolation, IsolationProbe, find_executable, rooted_argv
from .operations import AwsScope
from .records import Failure, Records, failure_of, iso_now, no_reason, process_outcome
from .rootfs import InvalidLayer, resolve_inside
from .runtime import ProcessOutcome, ProcessSpec, run_process, spawn_error

log = logging.getLogger(__name__)


@define
class DirectEnvironment:
    """A warm execution environment: here, one log stream reused by consecutive invocations."""

    group: str
    stream: str
    generation: int
    stream_exists: bool = False


Say = Callable[[str], None]
"""Writes one line to the function's log (CloudWatch)."""


@frozen
class _ImagePlan:
    """How a function of the simulator's ECR runs: inside its image (``isolation`` set) or, saying why,
    on this machine."""

    argv: tuple[str, ...]
    image: ImageConfig | None
    pulled: PulledImage | None = None
    isolation: Isolation | None = None
    invalid: str = ""
    """Why the image cannot run at all (a layer that escapes its root...): Init fails ``InvalidImage``."""


class Launcher:
    """Starts a function's command: one process per invocation (direct model) or a runtime (Init)."""

    def __init__(
        self,
        base_environment: Mapping[str, str],
        bootstrap_binaries: Mapping[str, str] | None,
        images: EcrImages | None = None,
    ) -> None:
        self._base_environment = dict(base_environment)
        self._bootstrap_binaries = dict(bootstrap_binaries) if bootstrap_binaries is not None else None
        self._images = images
        self._isolation = IsolationProbe()
        self._warned_images: set[str] = set()
        self._warned_functions: set[tuple[str, str]] = set()
        self._warned_fallbacks: set[tuple[str, str]] = set()

    async def run_direct(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        payload: bytes,
        environment: DirectEnvironment,
        records: Records,
    ) -> ProcessOutcome | None:
        plan = await self._image_plan(config, lambda line: records.output(line, _now_ms()))
        if plan is not None and plan.invalid:
            return None
        if plan is not None and plan.isolation is not None and plan.pulled is not None:
            if not plan.argv:
                log.warning("function %s: image %s has no ENTRYPOINT or CMD", config.name, config.image_uri)
                return None
            tmp_dir = await asyncio.to_thread(tempfile.mkdtemp, prefix="sockerless-lambda-tmp-")
            try:
                env = self._child_environment(scope, config, environment, plan.pulled.config, rooted=True)
                argv = self._rooted(config, plan, tmp_dir)
                spec = ProcessSpec(argv, env, payload, float(config.timeout_seconds), cwd=tmp_dir)
                return await run_process(spec, records.output)
            finally:
                await asyncio.to_thread(shutil.rmtree, tmp_dir, True)
        argv = plan.argv if plan is not None else config.argv
        if not argv:
            log.warning(
                "function %s has no ImageConfig EntryPoint or Command: the simulator does not read the "
                "image, so it has nothing to run and fails the invocation",
                config.name,
            )
            return None
        if plan is None:
            self._warn_not_pulled(config)
        env = self._child_environment(scope, config, environment, plan.image if plan else None)
        spec = ProcessSpec(
            argv=argv,
            env=env,
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

        def invalid_entrypoint(problem: str) -> tuple[float, Failure]:
            return elapsed(), Failure(
                "Runtime.InvalidEntrypoint", request_prefix + problem, f"{request_prefix}{problem}"
            )

        def say(line: str) -> None:
            if environment.sink is not None:
                environment.sink(line, _now_ms())

        plan = await self._image_plan(config, say)
        if plan is not None and plan.invalid:
            return elapsed(), Failure(
                "InvalidImage", request_prefix + plan.invalid, request_prefix + plan.invalid
            )
        command = self._runtime_command(scope, config, environment, plan)
        if isinstance(command, str):
            return invalid_entrypoint(command)
        spawn_problem = environment.spawn(*command)
        if spawn_problem is not None:
            return invalid_entrypoint(spawn_problem)
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

    def _runtime_command(
        self,
        scope: AwsScope,
        config: FunctionConfig,
        environment: ExecutionEnvironment,
        plan: _ImagePlan | None,
    ) -> tuple[tuple[str, ...], dict[str, str], str | None] | str:
        """The runtime's host command, its environment and working directory; or why it cannot start."""
        if plan is not None and plan.isolation is not None and plan.pulled is not None:
            if not plan.argv:
                return (
                    f"the image {config.image_uri} has no ENTRYPOINT or CMD and the function no ImageConfig"
                )
            env = self._child_environment(scope, config, environment, plan.pulled.config, rooted=True)
            env.update(
                AWS_LAMBDA_RUNTIME_API=environment.runtime_api,
                TMPDIR="/tmp",  # noqa: S108 - the environment's own directory, mounted there
                SOCKERLESS_BOOTSTRAP_TMP_DIR="/tmp",  # noqa: S108
            )
            if not find_executable(plan.pulled.root, plan.argv[0], env.get("PATH", DEFAULT_PATH)):
                return spawn_error(plan.argv[0], FileNotFoundError(2, "No such file or directory"))
            return self._rooted(config, plan, environment.tmp_dir), env, None
        argv = plan.argv if plan is not None else config.argv
        if not argv:
            # Lambda would start the image's own ENTRYPOINT/CMD; an image the simulator does not pull
            # has none here: an entrypoint error that says why, never a run that seems to succeed.
            problem = (
                "the simulator does not pull images outside its own ECR, so it cannot run the image's "
                f"own ENTRYPOINT/CMD ({config.image_uri}): give the function an ImageConfig EntryPoint "
                "or Command"
            )
            log.warning("function %s: %s", config.name, problem)
            return problem
        runtime_argv, problem = self._runtime_argv(config, argv, warn=plan is None)
        if runtime_argv is None:
            return problem
        env = self._child_environment(scope, config, environment, plan.image if plan else None)
        env.update(
            AWS_LAMBDA_RUNTIME_API=environment.runtime_api,
            TMPDIR=environment.tmp_dir,
            SOCKERLESS_BOOTSTRAP_TMP_DIR=environment.tmp_dir,
        )
        return runtime_argv, env, host_directory(config.working_directory)

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

    def _runtime_argv(
        self, config: FunctionConfig, argv: tuple[str, ...], *, warn: bool
    ) -> tuple[tuple[str, ...] | None, str]:
        """The command that starts the function's runtime here, or None and why it cannot start."""
        if argv[0] != BOOTSTRAP_IMAGE_PATH:
            if warn:
                self._warn_not_pulled(config)
            return argv, ""
        binary = self._bootstrap_binary(config.architecture)
        if binary is None:
            return None, (
                f"{BOOTSTRAP_IMAGE_PATH}: no bootstrap binary for {config.architecture} on this machine: "
                "build it with ./dev setup (or give the simulator's bootstrap_binaries setting)"
            )
        if warn and (config.name, config.version) not in self._warned_functions:
            self._warned_functions.add((config.name, config.version))
            log.warning(
                "function %s: image %s is NOT pulled: its entrypoint %s is the sockerless bootstrap, so "
                "the bootstrap from the package (%s) runs on this machine, without isolation",
                config.name,
                config.image_uri,
                BOOTSTRAP_IMAGE_PATH,
                binary,
            )
        return (binary, *argv[1:]), ""

    # -- images of the simulator's ECR --------------------------------------------------------------

    async def _image_plan(self, config: FunctionConfig, say: Say) -> _ImagePlan | None:
        """How a function whose image is in the simulator's ECR runs; None for any other image."""
        if self._images is None or not self._images.names(config.image_uri):
            return None
        try:
            pulled = await self._images.pull(config.image_uri)
        except InvalidLayer as exc:
            log.warning("function %s: image %s cannot be unpacked: %s", config.name, config.image_uri, exc)
            return _ImagePlan((), None, invalid=f"the image {config.image_uri} cannot be unpacked: {exc}")
        except (ImageProblem, OSError) as exc:
            self._fall_back(config, f"the image cannot be fetched or unpacked: {exc}", say)
            return _ImagePlan(config.argv, None)
        argv = pulled.config.argv(config.entrypoint, config.command)
        isolation, reason = await self._isolation.find()
        if isolation is None:
            self._fall_back(config, reason, say)
            return _ImagePlan(argv, pulled.config)
        return _ImagePlan(argv, pulled.config, pulled, isolation)

    def _fall_back(self, config: FunctionConfig, reason: str, say: Say) -> None:
        """Say, in the function's log and (once per image and reason) the simulator's, that the command
        runs on this machine and why."""
        say(
            f"sockerless simulator: {config.image_uri} runs on this machine, NOT inside the image's "
            f"filesystem: {reason}"
        )
        if (config.image_uri, reason) not in self._warned_fallbacks:
            self._warned_fallbacks.add((config.image_uri, reason))
            log.warning(
                "function %s: image %s runs on this machine, NOT inside its filesystem: %s",
                config.name,
                config.image_uri,
                reason,
            )

    def _rooted(self, config: FunctionConfig, plan: _ImagePlan, tmp_dir: str) -> tuple[str, ...]:
        """The host command that runs ``plan.argv`` inside the image, its working directory chosen."""
        assert plan.pulled is not None
        assert plan.isolation is not None
        working_dir = config.working_directory or plan.pulled.config.working_dir or "/"
        if not resolve_inside(plan.pulled.root, working_dir).is_dir():
            log.warning(
                "function %s: working directory %s is not in image %s: / instead",
                config.name,
                working_dir,
                config.image_uri,
            )
            working_dir = "/"
        return rooted_argv(plan.isolation, plan.pulled.root, tmp_dir, working_dir, plan.argv)

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
        self,
        scope: AwsScope,
        config: FunctionConfig,
        environment: DirectEnvironment | ExecutionEnvironment,
        image: ImageConfig | None = None,
        *,
        rooted: bool = False,
    ) -> dict[str, str]:
        """The simulator's variables, then the image's Env, the function's, and Lambda's, each over the
        last. Inside the image PATH is the image's (Docker's default without one), never the host's; on
        this machine it stays the host's."""
        env = dict(self._base_environment)
        if rooted:
            env["PATH"] = DEFAULT_PATH
        for key, value in image.env if image is not None else ():
            if rooted or key != "PATH":
                env[key] = value
        env.update(config.environment)
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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def host_directory(path: str | None) -> str | None:
    """The image's WorkingDirectory when this machine has it (a stat: cheap), else ``None``."""
    return path if path and os.path.isdir(path) else None


def trace_id() -> str:
    """An X-Ray trace header as Lambda passes it (``Lambda-Runtime-Trace-Id``); not sampled."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
