"""Start-up recovery and orphans: make the store and Lambda agree again after the process died.

* A record still ``creating`` (the process died around CreateFunction, before the create answered:
  the state is written before the answer): finished if the function exists, removed if it does not.
  A container whose create answered stays, its function there or not: a start creates a missing
  function again (see :mod:`.runs`).
* A record ``removing`` (left by an older version, which deleted the function before the record):
  the removal is finished.
* A ``running`` record whose Invoke was never sent is started again (it cannot have run).
* A ``running`` record whose Invoke may have been sent: the outcome is read from CloudWatch (the
  run's END/REPORT and error lines), waiting through the shared reader at most until the function
  timeout plus a margin; after that it exits with an error saying the outcome is unknown. No
  container stays ``running`` forever. When the function no longer exists (the embedded simulator
  restarted, or it was deleted), one read decides at once: the END line's outcome, or unknown (255).
* An exited container whose output was not complete (the process died in between) completes it
  from CloudWatch; a record written before the log store existed has its run's tail moved into it.
* An exited ``--rm`` container is removed once its output is complete.
* The functions of removed containers whose cleanup is pending (the process died, or
  ``DeleteFunction`` failed, after the remove answered) are deleted, before the server listens; a
  failure is logged and stays pending for the next start.
* Functions tagged as ours that the store does not know are orphans (a removed container's function
  still to delete is known): reported at start-up, and listed or deleted by
  ``sockerless-backend-lambda orphans [--delete]``.
"""

from __future__ import annotations

import logging
from typing import Any

from attrs import frozen

from sockerless.errors import NotFound, SockerlessError
from sockerless.store import Store
from sockerless_lambda.aws import AwsClients, call
from sockerless_lambda.cleanups import function_of
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.containers import ContainerService
from sockerless_lambda.errors import AwsOperation
from sockerless_lambda.functions import CONTAINER_ID_TAG, INSTANCE_TAG, MANAGED_TAG, NAME_TAG, delete_function
from sockerless_lambda.shared_functions import FUNCTION_KEY_TAG, SharedFunctions, stored_function_names
from sockerless_lambda.state import CREATING, QUEUED, LambdaState, Record

__all__ = ["Orphan", "delete_orphans", "find_orphans", "reconcile_containers"]

log = logging.getLogger("sockerless.lambda.reconcile")


async def reconcile_containers(
    service: ContainerService, store: Store[LambdaState], clients: AwsClients
) -> None:
    """Bring every stored container to a state this process can serve; runs before the server listens."""
    functions = service.functions
    try:
        await functions.reconcile_creates()
    except SockerlessError as exc:
        log.warning("reconciling the shared functions failed; retried at the next start: %s", exc.message)
    for record in list(store.containers()):
        state = record.backend_state
        try:
            if state.function_state == CREATING and state.function_key:
                await _finish_shared_create(record, store, functions)
            elif state.function_state == CREATING:
                await _finish_create(record, store, clients)
            elif record.status == "removing":  # written by older versions only
                await service.remove_record(record)
            elif record.status == "running":
                store.logs.open_output(record.id)
                if state.invocation == QUEUED:
                    log.info("restarting a start that never reached Lambda", extra=_about(record))
                    service.runs.launch(record, service.runs.run(record))
                else:
                    log.info("recovering an invocation's outcome", extra=_about(record))
                    service.runs.launch(record, service.runs.recover(record))
            elif record.status == "exited" and not state.output_complete and record.started_at is not None:
                log.info("completing a run's output", extra=_about(record))
                store.logs.open_output(record.id)
                tail, state.log_tail = state.log_tail, ""
                await service.output.take_tail(record, tail)
                await store.save_state(record)
                await service.output.exit_recorded(record, tail)
            elif record.status == "exited" and record.host_config.auto_remove:
                await service.remove_record(record)
        except SockerlessError as exc:
            log.warning(
                "reconciling a container failed; it is retried at the next start",
                extra={"fields": {"container": record.id, "error": exc.message}},
            )
    await service.finish_cleanups()
    try:
        await functions.reconcile_idle()
    except SockerlessError as exc:
        log.warning("sweeping idle functions failed; retried later: %s", exc.message)


async def _finish_shared_create(
    record: Record, store: Store[LambdaState], functions: SharedFunctions
) -> None:
    """A container whose create was cut: it stays when its shared function was made (or adopted by
    :meth:`SharedFunctions.reconcile_creates`), and goes (its client got no ID) when it was not."""
    state = record.backend_state
    function = functions.get(state.function_key)
    if function is None or function.state == CREATING:
        log.info(
            "dropping a container whose create was cut before it answered (its function does not exist)",
            extra=_about(record),
        )
        await store.delete_container(record.id, remember=False)
        return
    state.function_name, state.function_arn, state.function_state = (
        function.name,
        function.arn,
        function.state,
    )
    await store.save_state(record)
    log.info("finished a create interrupted by a restart", extra=_about(record))


async def _finish_create(record: Record, store: Store[LambdaState], clients: AwsClients) -> None:
    state = record.backend_state
    try:
        found = await call(
            AwsOperation("lambda", "GetFunction", "get function", state.function_name),
            clients.control.get_function,
            FunctionName=state.function_name,
        )
    except NotFound:
        # Its create never answered (the state is written before the answer): the client got no ID.
        log.info(
            "dropping a container whose create was cut before it answered (its function does not exist)",
            extra=_about(record),
        )
        await store.delete_container(record.id, remember=False)
        return
    configuration = found.get("Configuration", {})
    state.function_arn = configuration.get("FunctionArn", "")
    state.function_state = configuration.get("State") or "Pending"
    await store.save_state(record)
    log.info("finished a create interrupted by a restart", extra=_about(record))


def _about(record: Record) -> dict[str, Any]:
    return {"fields": {"container": record.id}}


@frozen
class Orphan:
    """A function tagged as sockerless's that no stored container owns."""

    function_name: str
    container_id: str
    container_name: str
    instance: str
    mine: bool  # tagged with this backend's instance ID (only these are deleted)
    #: A shared function's key (its tag); '' for a container's own function.
    function_key: str = ""


async def find_orphans(
    clients: AwsClients,
    store: Store[LambdaState],
    config: LambdaConfig,
    instance_id: str,
) -> list[Orphan]:
    """Functions named with our prefix and tagged ``sockerless:managed=true`` that the store does not
    know: neither a container's, nor a removed container's whose cleanup (its deletion) is pending,
    nor a shared function's (an idle one is known until the sweep deletes it).

    Costs one ListFunctions page per 50 functions plus one ListTags per unknown prefixed function.
    """
    listing = AwsOperation("lambda", "ListFunctions", "list functions")
    orphans: list[Orphan] = []
    params: dict[str, Any] = {}
    while True:
        page = await call(listing, clients.control.list_functions, **params)
        # Known as of now: containers created while the listing runs are not orphans.
        known = {r.backend_state.function_name for r in store.containers()}
        known.update(function_of(removed.cleanup) for removed in store.cleanups_pending())
        known.update(stored_function_names(store))
        for function in page.get("Functions", ()):
            name = str(function.get("FunctionName", ""))
            if not name.startswith(config.function_prefix) or name in known:
                continue
            tags = await call(
                AwsOperation("lambda", "ListTags", "list tags", name),
                clients.control.list_tags,
                Resource=str(function.get("FunctionArn", "")),
            )
            values = tags.get("Tags", {})
            if values.get(MANAGED_TAG) != "true":
                continue
            instance = values.get(INSTANCE_TAG, "")
            orphans.append(
                Orphan(
                    name,
                    values.get(CONTAINER_ID_TAG, ""),
                    values.get(NAME_TAG, ""),
                    instance,
                    instance == instance_id,
                    values.get(FUNCTION_KEY_TAG, ""),
                )
            )
        marker = page.get("NextMarker")
        if not marker:
            return orphans
        params["Marker"] = marker


async def delete_orphans(clients: AwsClients, orphans: list[Orphan]) -> list[str]:
    """Delete this instance's orphans; returns the names deleted."""
    deleted: list[str] = []
    for orphan in orphans:
        if not orphan.mine:
            continue
        await delete_function(clients, orphan.function_name)
        deleted.append(orphan.function_name)
    return deleted
