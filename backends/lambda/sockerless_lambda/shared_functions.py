"""One warm function per image configuration: the functions containers on the bootstrap share.

A container that runs through the bootstrap carries its command, environment and working directory
in each invocation's payload, so its function holds only what Lambda fixes at creation: the image,
architecture, memory, timeout, ephemeral storage, VPC, role, log group, ImageConfig, the bootstrap's
response mode and the invocation settings. Those ``CreateFunction`` parameters (all but the name,
description and tags), as canonical JSON, hashed with SHA-256, are the **function key**; the
function's name is ``function_prefix`` + the key's first 24 hex digits, so a restart, or a second
process, that creates the same key meets ``ResourceConflictException`` and adopts the function.

Each function is a durable :class:`SharedFunction` in the store's backend objects (kind
:data:`FUNCTION_KIND`), written before ``CreateFunction`` is sent. Containers name it by key
(``LambdaState.function_key``). What happens to it, per key, under one lock:

* the first create of a key writes the function's row, the container's record, then makes the one
  ``CreateFunction`` (concurrent creates of the key wait on the lock and find it made); later creates
  are one store write, and their starts one invoke (no control-plane call: the row says Active);
* the first start waits for Active once for all (:meth:`SharedFunctions.ready`); a function found
  gone at an invoke, or ``Failed``, is created again under its name once for all its containers
  (:meth:`SharedFunctions.replace`, keyed by a generation so that containers which saw the same loss
  make one ``CreateFunction``);
* the removal of the last container marks it idle (``idle_since``); :meth:`SharedFunctions.sweep`
  deletes it ``lambda.function_idle_seconds`` later, in a background task and at start-up.

Ordering between a delete and a new user: the sweep deletes under the key's lock, after checking
(again, under the lock) that no container names the key and that it is still idle and due; a create
takes the same lock, clears ``idle_since`` (durably) and adds its container before it lets go. So
either the create comes first and the sweep finds a user, or the sweep comes first, the row is gone
when the create gets the lock, and the create makes the function again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import attrs
from attrs import define, field

from sockerless.errors import NotFound, SockerlessError
from sockerless.store import Store
from sockerless.wire import converter, describe_structure_error, python_names
from sockerless_lambda.aws import AwsClients, aws_error_code, call
from sockerless_lambda.config import FUNCTION_ID_LENGTH, LambdaConfig
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.functions import (
    INSTANCE_TAG,
    MANAGED_TAG,
    FunctionSpec,
    create_function,
    delete_function,
)
from sockerless_lambda.invocations import FunctionNotReady, Invoker, function_cannot_run
from sockerless_lambda.state import CREATING, LambdaState

__all__ = [
    "FUNCTION_KEY_TAG",
    "FUNCTION_KIND",
    "SharedFunction",
    "SharedFunctions",
    "function_key",
    "shared_spec",
    "stored_function_names",
]

log = logging.getLogger("sockerless.lambda.shared_functions")

#: The store's backend-object kind of a shared function.
FUNCTION_KIND: Final = "lambda.function"
#: The tag naming a shared function's key (a per-container function has the container's ID instead).
FUNCTION_KEY_TAG: Final = "sockerless:function-key"
#: The parameters that are not part of the key: they do not change what runs.
_NOT_KEYED: Final = frozenset({"FunctionName", "Description", "Tags"})
#: After a failed deletion, the sweep leaves the function alone this long.
SWEEP_RETRY_SECONDS: Final = 30.0


def function_key(params: dict[str, Any], config: LambdaConfig) -> str:
    """SHA-256 (hex) of the canonical JSON of what Lambda fixes at creation, invocation settings included."""
    keyed = {name: value for name, value in params.items() if name not in _NOT_KEYED}
    keyed["sockerless:InvocationType"] = config.invocation_type
    if config.invocation_type == "Event":
        keyed["sockerless:MaximumEventAgeInSeconds"] = config.event_max_age
    text = json.dumps(keyed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def shared_spec(spec: FunctionSpec, *, instance_id: str, config: LambdaConfig) -> tuple[str, FunctionSpec]:
    """The key and the shared function of a container's ``spec``: named from the key, tagged with it
    (not with a container's ID, name or labels: they belong to the containers)."""
    key = function_key(spec.params, config)
    name = config.function_prefix + key[:FUNCTION_ID_LENGTH]
    tags = {MANAGED_TAG: "true", INSTANCE_TAG: instance_id[:256], FUNCTION_KEY_TAG: key}
    image = str(spec.params["Code"]["ImageUri"])
    description = f"sockerless function for {image}"
    params = {**spec.params, "FunctionName": name, "Description": description[:256], "Tags": tags}
    return key, attrs.evolve(spec, name=name, params=params)


def stored_function_names(store: Store[LambdaState]) -> set[str]:
    """The names of the shared functions the store holds (also without a started backend: the CLI)."""
    names: set[str] = set()
    for document in store.objects.all(FUNCTION_KIND).values():
        with contextlib.suppress(ValueError, AttributeError):
            names.add(str(json.loads(document).get("name", "")))
    names.discard("")
    return names


@python_names
@define
class SharedFunction:
    """A shared function as the store keeps it."""

    key: str
    name: str
    #: The CreateFunction parameters: to create it again under its name.
    params: dict[str, Any]
    #: CREATING until CreateFunction answered; then its State as last seen (Active once awaited).
    state: str = CREATING
    arn: str = ""
    #: Wall-clock time no container used it any more (None: in use); deleted idle_seconds after.
    idle_since: float | None = None


@define(kw_only=True)
class SharedFunctions:
    """The shared functions of one backend: their rows, users, creation, readiness and idle deletion."""

    _store: Store[LambdaState]
    _clients: AwsClients
    _invoker: Invoker
    _config: LambdaConfig
    #: Wall-clock seconds (idle times); tests move it.
    clock: Callable[[], float] = time.time
    _functions: dict[str, SharedFunction] = field(init=False, factory=dict)
    _users: dict[str, set[str]] = field(init=False, factory=dict)
    _locks: dict[str, asyncio.Lock] = field(init=False, factory=dict)
    _generations: dict[str, int] = field(init=False, factory=dict)
    _activations: dict[str, asyncio.Task[None]] = field(init=False, factory=dict)
    _not_before: dict[str, float] = field(init=False, factory=dict)
    _wake: asyncio.Event = field(init=False, factory=asyncio.Event)
    _sweeper: asyncio.Task[None] | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        for key, document in self._store.objects.all(FUNCTION_KIND).items():
            try:
                self._functions[key] = converter.structure(json.loads(document), SharedFunction)
            except Exception as exc:
                log.warning(
                    "a stored shared function is unreadable; it is left alone",
                    extra={"fields": {"key": key, "error": describe_structure_error(exc)}},
                )
        for record in self._store.containers():
            if record.backend_state.function_key:
                self._users.setdefault(record.backend_state.function_key, set()).add(record.id)

    # ------------------------------------------------------------------ what containers see

    def get(self, key: str) -> SharedFunction | None:
        return self._functions.get(key)

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def generation(self, key: str) -> int:
        """Counts the times the function was made again in this process (see :meth:`replace`)."""
        return self._generations.get(key, 0)

    # ------------------------------------------------------------------ create

    async def join(self, key: str, spec: FunctionSpec) -> tuple[SharedFunction, bool]:
        """The key's function for a new container, made durable (its row written, revived if idle);
        True when the caller must create it in Lambda (:meth:`create`). Call under :meth:`lock`."""
        function = self._functions.get(key)
        if function is None:
            function = SharedFunction(key=key, name=spec.name, params=dict(spec.params))
            await self._save(function)
            return function, True
        if function.idle_since is not None:
            function.idle_since = None
            await self._save(function)
            log.info("an idle function has a container again", extra=_about(function))
        return function, function.state == CREATING

    def add_user(self, key: str, container_id: str) -> None:
        self._users.setdefault(key, set()).add(container_id)

    async def create(self, function: SharedFunction) -> None:
        """CreateFunction under its name (adopting one that exists), its answer saved. Call under the lock.

        ``Failed`` at once: the function is deleted and the error raised (it can never run)."""
        spec = FunctionSpec(
            name=function.name, params=function.params, warnings=[], memory_mb=0, bootstrap=True
        )
        try:
            created = await create_function(self._clients, spec, self._config)
        except SockerlessError as exc:
            if aws_error_code(exc) != "ResourceConflictException":
                raise
            # Made by a process that died before its answer was saved, or by another process: adopt it.
            found = await call(
                AwsOperation("lambda", "GetFunction", "get function", function.name),
                self._clients.control.get_function,
                FunctionName=function.name,
            )
            created = dict(found.get("Configuration", {}))
            log.info("adopted an existing function of the same key", extra=_about(function))
        if created.get("State") == "Failed":
            await delete_function(self._clients, function.name)
            function.state = CREATING
            await self._save(function)
            raise function_cannot_run(function.name, created, "it failed to become active")
        function.arn = str(created.get("FunctionArn", ""))
        function.state = str(created.get("State") or "Pending")
        await self._save(function)

    async def abandon(self, function: SharedFunction, container_id: str) -> None:
        """A create failed after :meth:`join` (its container is not stored): a function no container
        uses is idle from now, or forgotten when it was never made. Call under the lock."""
        users = self._users.get(function.key, set())
        users.discard(container_id)
        if users or self._in_use(function.key):
            return
        if function.state == CREATING:
            await self._store.objects.delete(FUNCTION_KIND, function.key)
            self._functions.pop(function.key, None)
            return
        await self._mark_idle(function)

    # ------------------------------------------------------------------ start

    async def ready(self, key: str) -> None:
        """Return once the function is Active, waiting for it once for all its containers; a function
        ``Failed`` is made again once (:meth:`replace`); ``FunctionNotReady`` if it still cannot run."""
        function = self._functions.get(key)
        if function is None:
            raise NotFound(
                f"lambda: the shared function {key[:12]} is not known (its containers were removed)"
            )
        if function.state == "Active":
            return
        task = self._activations.get(key)
        if task is None:
            task = self._activations[key] = asyncio.create_task(self._activate(function))
            task.add_done_callback(lambda _: self._activations.pop(key, None))
        await asyncio.shield(task)

    async def _activate(self, function: SharedFunction) -> None:
        generation = self.generation(function.key)
        try:
            await self._invoker.wait_until_active(function.name)
        except FunctionNotReady as exc:
            if exc.state != "Failed":
                raise
            log.warning("the shared function is Failed: making it again", extra=_about(function))
            await self.replace(function.key, generation, failed=True)
            await self._invoker.wait_until_active(function.name)
        except NotFound:
            await self.replace(function.key, generation)
            await self._invoker.wait_until_active(function.name)
        if self._functions.get(function.key) is function:  # not deleted (its containers removed) meanwhile
            function.state = "Active"  # Inactive too: the invoke wakes it
            await self._save(function)

    async def replace(self, key: str, generation: int, *, failed: bool = False) -> None:
        """Make the function again under its name (deleting it first when ``failed``), unless it was
        made again since ``generation`` (another container saw the same loss first)."""
        async with self.lock(key):
            function = self._functions.get(key)
            if function is None or self.generation(key) != generation:
                return
            log.info("the shared function is gone or failed: creating it again", extra=_about(function))
            if failed:
                await delete_function(self._clients, function.name)
            self._generations[key] = generation + 1
            await self.create(function)

    # ------------------------------------------------------------------ removal and idle deletion

    async def release(self, key: str, container_id: str) -> None:
        """A container of ``key`` is gone: with no container left, the function is idle from now."""
        async with self.lock(key):
            users = self._users.get(key, set())
            users.discard(container_id)
            function = self._functions.get(key)
            if users or function is None or function.idle_since is not None:
                return
            await self._mark_idle(function)

    async def _mark_idle(self, function: SharedFunction) -> None:
        function.idle_since = self.clock()
        await self._save(function)
        log.info("the shared function is idle", extra=_about(function))
        self._wake.set()

    def start_sweeper(self) -> None:
        """Delete idle functions when due, in the background until :meth:`close`."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_when_due(), name="lambda-function-sweep")

    async def close(self) -> None:
        """Stop the sweep and the readiness waits (a function half deleted is deleted at the next start)."""
        tasks = [task for task in (self._sweeper, *self._activations.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sweeper = None

    async def sweep(self) -> None:
        """Delete every idle function that is due (no container names it: checked under its lock)."""
        now = self.clock()
        for key in [key for key, due in self._due_times().items() if due <= now]:
            async with self.lock(key):
                function = self._functions.get(key)
                due = self._due_times().get(key)
                if function is None or due is None or due > self.clock():
                    continue
                if self._in_use(key):  # a container the users cache missed: in use, not idle
                    function.idle_since = None
                    await self._save(function)
                    continue
                try:
                    await delete_function(self._clients, function.name)
                    await self._store.objects.delete(FUNCTION_KIND, key)
                except SockerlessError as exc:
                    self._not_before[key] = self.clock() + SWEEP_RETRY_SECONDS
                    log.warning(
                        "deleting an idle function failed; retried later",
                        extra={"fields": {"function": function.name, "error": exc.message}},
                    )
                    continue
                self._functions.pop(key, None)
                self._generations.pop(key, None)
                self._not_before.pop(key, None)
                log.info("idle function deleted", extra=_about(function))

    async def reconcile_creates(self) -> None:
        """At start-up, before the containers: the functions whose create a crash cut are adopted when
        Lambda has them (their row stays ``creating`` when it does not: see :meth:`reconcile_idle`)."""
        for function in list(self._functions.values()):
            if function.state != CREATING:
                continue
            try:
                found = await call(
                    AwsOperation("lambda", "GetFunction", "get function", function.name),
                    self._clients.control.get_function,
                    FunctionName=function.name,
                )
            except NotFound:
                continue
            configuration = found.get("Configuration", {})
            function.arn = str(configuration.get("FunctionArn", ""))
            function.state = str(configuration.get("State") or "Pending")
            await self._save(function)
            log.info("finished a function create interrupted by a restart", extra=_about(function))

    async def reconcile_idle(self) -> None:
        """At start-up, after the containers: a function no container names is forgotten when it was
        never made, or idle (from now, if a crash came before that was written); the due ones are deleted."""
        for function in list(self._functions.values()):
            if self._in_use(function.key):
                continue
            if function.state == CREATING:
                await self._store.objects.delete(FUNCTION_KIND, function.key)
                self._functions.pop(function.key, None)
                log.info(
                    "dropped a function whose create was cut before it reached Lambda", extra=_about(function)
                )
            elif function.idle_since is None:
                await self._mark_idle(function)
        await self.sweep()

    def _in_use(self, key: str) -> bool:
        """Authoritative: some stored container names the key (the users set is a cache of this)."""
        users = {r.id for r in self._store.containers() if r.backend_state.function_key == key}
        self._users[key] = users
        return bool(users)

    def _due_times(self) -> dict[str, float]:
        idle = self._config.function_idle_seconds
        return {
            key: max(function.idle_since + idle, self._not_before.get(key, 0.0))
            for key, function in self._functions.items()
            if function.idle_since is not None
        }

    async def _sweep_when_due(self) -> None:
        while True:
            self._wake.clear()
            due = min(self._due_times().values(), default=None)
            timeout = None if due is None else max(0.0, due - self.clock())
            # No timeout when nothing is idle: a release wakes it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            try:
                await self.sweep()
            except Exception:  # a background task: reported, never silently dead
                log.exception("the idle function sweep failed")
                await asyncio.sleep(SWEEP_RETRY_SECONDS)

    async def _save(self, function: SharedFunction) -> None:
        document = json.dumps(converter.unstructure(function, SharedFunction), separators=(",", ":"))
        await self._store.objects.put(FUNCTION_KIND, function.key, document)
        self._functions[function.key] = function


def _about(function: SharedFunction) -> dict[str, Any]:
    return {"fields": {"function": function.name, "key": function.key[:12]}}
