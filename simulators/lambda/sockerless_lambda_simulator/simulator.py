"""``LambdaSimulator``: moto plus a runtime that really runs the command, behind one endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import socket
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import aiohttp
from aiohttp import web

from .config import (
    DEFAULT_EMPTY_PAGE_EVERY,
    DEFAULT_EVENT_DELAY,
    DEFAULT_LOG_DELIVERY_DELAY,
    DEFAULT_ROLE_NAME,
    SimulatorConfig,
)
from .control import add_control_routes
from .delivery import LogDelivery
from .faults import FaultInjector, FaultRule
from .images import EcrImages
from .invocations import InvocationRunner, RuntimeModel
from .moto_api import MotoApi, MotoGate
from .moto_server import InProcessLogs, InProcessMoto
from .operations import AwsScope
from .proxy import MotoProxy
from .quotas import (
    DEFAULT_CONCURRENCY_LIMIT,
    DEFAULT_CONTROL_PLANE_RATE,
    DEFAULT_GET_FUNCTION_RATE,
    RequestQuotas,
)
from .registry import LocalRegistry, registry_unavailable
from .rootfs import RootfsCache
from .server import AwsFrontend
from .state import DEFAULT_PENDING_SECONDS, FunctionStateOverlay, StateRule, StateRules
from .stats import Stats

__all__ = ["LambdaSimulator"]

log = logging.getLogger(__name__)

_FAKE_SECRET = "testing"  # noqa: S105 - moto accepts any credentials; these never reach AWS
# Invoke payloads reach 6 MB, CreateFunction zips 50 MB: above aiohttp's 1 MB default.
_MAX_REQUEST_BYTES = 64 * 1024 * 1024
_SHUTDOWN_SECONDS = 5.0


class LambdaSimulator:
    """A local AWS endpoint where Lambda functions really run their ``ImageConfig`` command.

    Use it as ``async with LambdaSimulator() as sim:`` or with ``await start()`` / ``await stop()``.
    Every AWS service is reachable at ``endpoint_url`` (moto behind it); ``role_arn`` is an
    execution role that already exists. Faults can be given here (``faults``) or added at run time
    with ``add_fault`` or ``POST {endpoint_url}/_sim/faults``.

    Args:
        host: loopback address to listen on; anything else is refused.
        port: port to listen on, 0 for an ephemeral one.
        moto_url: an external ``moto_server`` to use instead of an in-process one.
        region: default region for calls that carry no credential scope.
        role_name: name of the execution role created in moto's IAM.
        pending_seconds: how long a new function stays ``Pending`` (default 2 s, as AWS keeps new
            functions Pending for a few seconds; 0: Active at once).
        seed: seed of the fault dice, for reproducible ``probability`` faults.
        faults: fault rules active from the start (``FaultRule`` or its JSON form).
        event_retry_delays: seconds before each retry of a failed Event invocation (Lambda: about
            1 and 2 minutes); the function's MaximumRetryAttempts caps the count. ``()``: no retries.
        log_flush_seconds: how often a running invocation's output is written to CloudWatch.
        state_rules: rules that put matching functions in a state (``StateRule`` or its JSON form):
            Failed with a reason code, Inactive, Deactivating, ActiveNonInvocable, Deleting...; or
            fail their updates. Added at run time with ``add_state_rule`` or ``POST /_sim/states``.
        inactive_after_seconds: idle time after which an Active function is ``Inactive`` (an
            Invoke then wakes it: Pending for ``pending_seconds``, then Active). ``None``: never.
        deleting_seconds: how long a DeleteFunction keeps its function ``Deleting`` (it answers then).
        log_delivery_delay: seconds after it is written before a log event shows to readers (AWS:
            a few seconds; 2 by default).
        late_log_probability, late_log_seconds: the share of log events shown that much later
            still (decided per event by a hash of the seed: the same for every read).
        late_log_match: a regular expression: the log events it finds are late too.
        empty_page_every: every Nth FilterLogEvents answers an empty page with a nextToken (0: never).
        event_delay: seconds an Event invocation waits in Lambda's queue before it runs.
        event_duplicate_probability, event_duplicate_after: the chance that an Event invocation is
            delivered a second time (same request ID), that many seconds after the first.
        runtime_model: ``lambda`` (default): functions run as Lambda runs them, in execution
            environments whose runtime speaks the Runtime API; ``direct``: one process per invocation,
            payload on stdin, output lines as the answer (not what Lambda does: a test convenience).
        init_timeout_seconds: how long Init may take before it fails (Lambda: 10 s).
        environment_idle_seconds: how long a warm environment lives without an invocation.
        bootstrap_binaries: architecture -> host path of the binary that runs for the image path
            ``/opt/sockerless/bootstrap`` of an image outside the simulator's ECR; default: the
            ``sockerless_lambda`` package's, if installed.
        ecr_registry: start a real registry as the simulator's ECR when Debian's ``docker-registry``
            is installed (``ecr_registry_url``): functions of its images run inside their filesystem.
        state_dir: the ECR's blobs and the unpacked images' cache; default: a temporary directory.
    """

    # In-process moto servers share moto's global state: reset it only when no other simulator uses it.
    _in_process_users: ClassVar[int] = 0

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        moto_url: str | None = None,
        region: str = "us-east-1",
        role_name: str = DEFAULT_ROLE_NAME,
        pending_seconds: float = DEFAULT_PENDING_SECONDS,
        seed: int | None = None,
        faults: Iterable[FaultRule | Mapping[str, Any]] = (),
        event_retry_delays: Iterable[float] = (60.0, 120.0),
        log_flush_seconds: float = 1.0,
        max_connections: int = 1024,
        control_plane_rate: float | None = DEFAULT_CONTROL_PLANE_RATE,
        get_function_rate: float | None = DEFAULT_GET_FUNCTION_RATE,
        concurrency_limit: int | None = DEFAULT_CONCURRENCY_LIMIT,
        state_rules: Iterable[StateRule | Mapping[str, Any]] = (),
        inactive_after_seconds: float | None = None,
        deleting_seconds: float = 0.0,
        log_delivery_delay: float = DEFAULT_LOG_DELIVERY_DELAY,
        late_log_probability: float = 0.0,
        late_log_seconds: float = 30.0,
        late_log_match: str | None = None,
        empty_page_every: int = DEFAULT_EMPTY_PAGE_EVERY,
        event_delay: float = DEFAULT_EVENT_DELAY,
        event_duplicate_probability: float = 0.0,
        event_duplicate_after: float = 0.1,
        runtime_model: str = "lambda",
        init_timeout_seconds: float = 10.0,
        environment_idle_seconds: float = 300.0,
        bootstrap_binaries: Mapping[str, str] | None = None,
        ecr_registry: bool = True,
        state_dir: str | None = None,
    ) -> None:
        rules = tuple(rule if isinstance(rule, FaultRule) else FaultRule.from_json(rule) for rule in faults)
        states = tuple(
            rule if isinstance(rule, StateRule) else StateRule.from_json(rule) for rule in state_rules
        )
        self.config = SimulatorConfig(
            host=host,
            port=port,
            moto_url=moto_url,
            region=region,
            role_name=role_name,
            pending_seconds=pending_seconds,
            seed=seed,
            faults=rules,
            event_retry_delays=tuple(event_retry_delays),
            log_flush_seconds=log_flush_seconds,
            max_connections=max_connections,
            control_plane_rate=control_plane_rate,
            get_function_rate=get_function_rate,
            concurrency_limit=concurrency_limit,
            state_rules=states,
            inactive_after_seconds=inactive_after_seconds,
            deleting_seconds=deleting_seconds,
            log_delivery_delay=log_delivery_delay,
            late_log_probability=late_log_probability,
            late_log_seconds=late_log_seconds,
            late_log_match=late_log_match,
            empty_page_every=empty_page_every,
            event_delay=event_delay,
            event_duplicate_probability=event_duplicate_probability,
            event_duplicate_after=event_duplicate_after,
            runtime_model=runtime_model,
            init_timeout_seconds=init_timeout_seconds,
            environment_idle_seconds=environment_idle_seconds,
            bootstrap_binaries=dict(bootstrap_binaries) if bootstrap_binaries is not None else None,
            ecr_registry=ecr_registry,
            state_dir=state_dir,
        )
        self.faults = FaultInjector(seed, rules)
        self.states = StateRules(states)
        self.stats = Stats()
        self._endpoint_url: str | None = None
        self._role_arn: str | None = None
        self._moto_url: str | None = None
        self._registry: LocalRegistry | None = None
        self._state_dir = Path()
        self.images: EcrImages | None = None
        """The simulator's ECR images and their unpacked trees (``images.cache.unpacked`` counts them)."""
        #: What start() opened, closed by stop() in the reverse order.
        self._resources: contextlib.AsyncExitStack | None = None

    # -- what clients need ----------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The one AWS endpoint (``http://127.0.0.1:<port>``) for every service."""
        return _started(self._endpoint_url)

    @property
    def role_arn(self) -> str:
        """An execution role that exists in moto's IAM, ready for CreateFunction."""
        return _started(self._role_arn)

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def account_id(self) -> str:
        return self.role_arn.split(":")[4]

    @property
    def moto_url(self) -> str:
        """moto itself, bypassing the simulator (no runtime, no faults, not counted)."""
        return _started(self._moto_url)

    def client_environment(self) -> dict[str, str]:
        """Environment variables that point an AWS SDK at the simulator with fake credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": _FAKE_SECRET,
            "AWS_SECRET_ACCESS_KEY": _FAKE_SECRET,
            "AWS_SESSION_TOKEN": _FAKE_SECRET,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def add_fault(self, rule: FaultRule | Mapping[str, Any]) -> str:
        """Activate a fault rule now; returns its id (for ``remove_fault``)."""
        return self.faults.add(rule if isinstance(rule, FaultRule) else FaultRule.from_json(rule))

    @property
    def ecr_registry_url(self) -> str | None:
        """``http://127.0.0.1:PORT``: the simulator's ECR registry (the ``proxyEndpoint`` of
        ``GetAuthorizationToken``); None when it does not run (not installed, or turned off)."""
        return self._registry.url if self._registry is not None else None

    @property
    def ecr_registry_host(self) -> str | None:
        """``127.0.0.1:PORT``, as an image URI names the simulator's ECR registry."""
        return self._registry.host if self._registry is not None else None

    @property
    def ecr_registry_storage(self) -> Path | None:
        """Where the ECR registry keeps its blobs (tests count uploads there)."""
        return self._registry.root / "storage" if self._registry is not None else None

    def remove_fault(self, rule_id: str) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    def add_state_rule(self, rule: StateRule | Mapping[str, Any]) -> str:
        """Activate a state rule for the functions created (or updated) from now on; returns its id."""
        return self.states.add(rule if isinstance(rule, StateRule) else StateRule.from_json(rule))

    def remove_state_rule(self, rule_id: str) -> bool:
        return self.states.remove(rule_id)

    # -- life cycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start moto (unless external), prepare it, then listen on the loopback endpoint."""
        if self._resources is not None:
            raise RuntimeError("the simulator is already started")
        self._resources = contextlib.AsyncExitStack()
        try:
            await self._start(self._resources)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, resources: contextlib.AsyncExitStack) -> None:
        config = self.config
        registry_started = await self._start_registry(resources)
        moto_server: InProcessMoto | None = None
        if config.moto_url:
            self._moto_url = config.moto_url.rstrip("/")
        else:
            moto_server = InProcessMoto()
            self._moto_url = await moto_server.start()
            LambdaSimulator._in_process_users += 1
            resources.push_async_callback(self._stop_moto, moto_server)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=0),
            auto_decompress=False,  # bodies pass through byte for byte
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        resources.push_async_callback(session.close)
        await registry_started
        if self._registry is not None:
            cache = RootfsCache(self._state_dir / "rootfs")
            await asyncio.to_thread(cache.remove_partial_trees)
            self.images = EcrImages(self._registry.host, cache)
        gate = MotoGate()
        moto = MotoApi(session, self._moto_url, gate)
        if moto_server is not None and LambdaSimulator._in_process_users == 1:
            await moto.reset()
        # Must precede any CreateFunction: the switch moves Lambda to another store (see the docs).
        await moto.set_config({"lambda": {"use_docker": False}})
        self._role_arn = await moto.ensure_role(
            AwsScope(_FAKE_SECRET, config.region, "iam"), config.role_name
        )

        listener = _bind_loopback(config.host, config.port)
        host, port = listener.getsockname()[:2]
        self._endpoint_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

        overlay = FunctionStateOverlay(
            config.pending_seconds, rules=self.states, inactive_after_seconds=config.inactive_after_seconds
        )
        invocations = InvocationRunner(
            moto,
            overlay,
            self.stats,
            account_id=self.account_id,
            base_environment=self._child_environment(),
            flush_seconds=config.log_flush_seconds,
            event_retry_delays=config.event_retry_delays,
            event_delay=config.event_delay,
            event_duplicate_probability=config.event_duplicate_probability,
            event_duplicate_after=config.event_duplicate_after,
            rng=random.Random(None if config.seed is None else config.seed + 1),  # noqa: S311 - dice
            logs=InProcessLogs(gate) if moto_server is not None else None,
            runtime_model=RuntimeModel(config.runtime_model),
            init_timeout_seconds=config.init_timeout_seconds,
            environment_idle_seconds=config.environment_idle_seconds,
            bootstrap_binaries=config.bootstrap_binaries,
            images=self.images,
        )
        frontend = AwsFrontend(
            region=config.region,
            proxy=MotoProxy(session, self._moto_url, gate),
            invocations=invocations,
            overlay=overlay,
            faults=self.faults,
            concurrency_limit=config.concurrency_limit,
            deleting_seconds=config.deleting_seconds,
            quotas=RequestQuotas(
                {"control_plane": config.control_plane_rate, "get_function": config.get_function_rate}
            ),
            stats=self.stats,
            images=self.images,
            delivery=LogDelivery(
                delay=config.log_delivery_delay,
                late_probability=config.late_log_probability,
                late_seconds=config.late_log_seconds,
                late_match=config.late_log_match,
                empty_page_every=config.empty_page_every,
                seed=config.seed,
            ),
        )
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        add_control_routes(app.router, self.faults, self.stats, self._info, self.states)
        app.router.add_route("*", "/{tail:.*}", frontend.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_SECONDS)
        await runner.setup()
        resources.push_async_callback(runner.cleanup)
        resources.push_async_callback(invocations.close)  # before the runner: requests end with their runs
        # AWS's endpoints take any burst of connections; aiohttp's default backlog (128) would make a
        # burst of clients (120 concurrent invokes on a busy machine) wait out SYN retransmissions.
        site = web.SockSite(runner, listener, backlog=_BACKLOG)
        await site.start()
        resources.push_async_callback(site.stop)
        log.info(
            "Lambda simulator at %s (moto at %s, role %s, ECR registry %s)",
            self.endpoint_url,
            self._moto_url,
            self.role_arn,
            self.ecr_registry_host or "none",
        )

    async def _start_registry(self, resources: contextlib.AsyncExitStack) -> asyncio.Future[None]:
        """Begin starting the ECR registry (when installed and wanted) alongside moto: the future is
        done when it answers."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        if not self.config.ecr_registry:
            return done
        missing = registry_unavailable()
        if missing is not None:
            log.warning("no ECR registry: %s; functions run on this machine, not in their images", missing)
            return done
        if self.config.state_dir is not None:
            state = Path(self.config.state_dir)
        else:
            state = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sockerless-simulator-"))
            resources.push_async_callback(asyncio.to_thread, shutil.rmtree, state, True)
        registry = LocalRegistry(state / "ecr")
        self._registry = registry
        resources.push_async_callback(self._stop_registry)
        self._state_dir = state
        starting = asyncio.ensure_future(registry.start())
        resources.callback(starting.cancel)  # a start that failed elsewhere stops this one too
        return starting

    async def _stop_registry(self) -> None:
        registry, self._registry = self._registry, None
        images, self.images = self.images, None
        if images is not None:
            await images.close()
        if registry is not None:
            await registry.stop()

    async def stop(self) -> None:
        """Stop listening, kill running invocations and wait for them, then stop moto. Idempotent."""
        if self._resources is not None:
            resources, self._resources = self._resources, None
            await resources.aclose()
        self._endpoint_url = None

    @staticmethod
    async def _stop_moto(moto_server: InProcessMoto) -> None:
        LambdaSimulator._in_process_users -= 1
        await moto_server.stop()

    def _child_environment(self) -> dict[str, str]:
        # What every command sees besides the function's variables: fake credentials and our
        # endpoint, so an AWS SDK inside the command talks to the simulator, never to real AWS.
        return {
            "PATH": self.config.child_path,
            "LANG": "C.UTF-8",  # Lambda sets en_US.UTF-8, which many hosts lack
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_SECRET_ACCESS_KEY": _FAKE_SECRET,
            "AWS_SESSION_TOKEN": _FAKE_SECRET,
        }

    def _info(self) -> dict[str, Any]:
        return {
            "endpoint_url": self._endpoint_url,
            "role_arn": self._role_arn,
            "region": self.region,
            "moto_url": self._moto_url,
            "pending_seconds": self.config.pending_seconds,
            "inactive_after_seconds": self.config.inactive_after_seconds,
            "log_delivery_delay": self.config.log_delivery_delay,
            "event_delay": self.config.event_delay,
            "runtime_model": self.config.runtime_model,
            "ecr_registry_url": self.ecr_registry_url,
        }


def _started(value: str | None) -> str:
    if value is None:
        raise RuntimeError("the simulator is not started: call 'await simulator.start()' first")
    return value


_BACKLOG = 1024


def _bind_loopback(host: str, port: int) -> socket.socket:
    address = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
    except OSError:
        listener.close()
        raise
    return listener
