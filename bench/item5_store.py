"""Item 5: the store at scale: 10 000 containers.

A fresh store file is filled with ``Store.add_containers`` (one transaction) with exited Lambda
containers shaped as the backend writes them (function name and ARN, request ID, settled logs,
two labels). Then ``sockerless serve lambda`` opens it, on a standalone simulator:

* start-up: from spawning the process to the first answer on its socket (``GET capabilities``),
  including the store's load and reconciliation; also with an empty store, and the store's own
  ``Store.open`` in this process, to show where the time goes;
* inspect: sequential ``GET /internal/v1/containers/{id}`` of random containers, client-side p99;
* list: ``GET /internal/v1/containers?all=1``, the whole list, client-side time. The backend encodes
  each row once and again only when its container or its status text changes (``views.ViewCache``),
  so the first list after start-up, which encodes them all, is reported apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import os
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

from sockerless.hostconfig import HostConfig
from sockerless.models import ContainerConfig
from sockerless.store import ContainerRecord, Store
from sockerless.views import ViewCache
from sockerless_lambda.state import DONE, LambdaState, OutputSource

from .common import IMAGE, ItemResult, Row, Table, access_durations, median, percentile
from .processes import Product, Simulator, bench_dir, sockerless_argv, unix_session

TARGET_INSPECT_P99_MS = 5.0
TARGET_LIST_MS = 250.0
TARGET_STARTUP_S = 2.0


def make_records(count: int) -> list[ContainerRecord[LambdaState]]:
    """``count`` exited containers, shaped as the Lambda backend writes them, oldest first."""
    now = dt.datetime.now(dt.UTC)
    records = []
    for index in range(count):
        container_id = secrets.token_hex(32)
        created = now - dt.timedelta(seconds=count - index)
        function = f"skls-{container_id[:24]}"
        state = LambdaState(
            function_name=function,
            function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
            function_state="Active",
            invocation=DONE,
            request_id=secrets.token_hex(16),
            output_source=OutputSource.TAIL,
            output_complete=True,
        )
        config = ContainerConfig(
            image=IMAGE,
            cmd=["sh", "-c", f"echo job {index}"],
            env=[f"JOB={index}"],
            labels={"bench": "store", "job": str(index)},
        )
        records.append(
            ContainerRecord(
                id=container_id,
                name=f"bench_{index}",
                created=created,
                image=IMAGE,
                config=config,
                host_config=HostConfig(),
                backend_state=state,
                image_id="sha256:" + "ab" * 32,
                status="exited",
                exit_code=index % 3,
                started_at=created + dt.timedelta(milliseconds=50),
                finished_at=created + dt.timedelta(milliseconds=900),
            )
        )
    return records


async def open_store(path: str) -> Store[LambdaState]:
    return await Store.open(path, state_class=LambdaState)


async def fill_store(path: str, count: int) -> float:
    store = await open_store(path)
    try:
        began = time.perf_counter()
        await store.add_containers(make_records(count))
        return time.perf_counter() - began
    finally:
        await store.close()


async def time_open(path: str) -> float:
    began = time.perf_counter()
    store = await open_store(path)
    elapsed = time.perf_counter() - began
    await store.close()
    return elapsed


async def startup(workdir: str, sim: Simulator, store: str, name: str) -> tuple[Product, float]:
    socket = os.path.join(workdir, f"{name}.sock")
    served = Product(workdir, name, sockerless_argv("serve", sim, socket=socket, store=store))
    await served.start()
    try:
        seconds = await served.wait_answering(f"unix://{socket}", "/internal/v1/capabilities")
    except BaseException:
        await served.stop()
        raise
    return served, seconds


async def measure_startups(
    workdir: str, sim: Simulator, stores: dict[str, str], starts: int
) -> dict[str, float]:
    """Median seconds from spawn to the first answer, per store, the order alternating."""
    times: dict[str, list[float]] = {label: [] for label in stores}
    for index in range(starts):
        for label in list(stores)[:: 1 if index % 2 == 0 else -1]:
            served, seconds = await startup(workdir, sim, stores[label], f"serve-{label}")
            times[label].append(seconds)
            await served.stop()
    return {label: median(values) for label, values in times.items()}


async def measure_requests(
    workdir: str, sim: Simulator, store: str, ids: list[str], inspects: int, lists: int
) -> dict[str, Any]:
    """Client-side ms of sequential inspects of random containers and of whole lists, and the
    server-side ones from the access log."""
    served, _ = await startup(workdir, sim, store, "serve-big")
    try:
        async with unix_session(os.path.join(workdir, "serve-big.sock")) as session:
            await _get(session, "/internal/v1/containers/" + ids[0])  # the connection, the first answer
            inspect_ms = []
            for container_id in random.sample(ids, min(inspects, len(ids))):
                began = time.perf_counter()
                document = json.loads(await _get(session, f"/internal/v1/containers/{container_id}"))
                inspect_ms.append((time.perf_counter() - began) * 1000)
                assert document["Id"] == container_id
            list_ms = []
            for _ in range(lists):
                began = time.perf_counter()
                body = await _get(session, "/internal/v1/containers?all=1")
                list_ms.append((time.perf_counter() - began) * 1000)
    finally:
        await served.stop()
    server = access_durations(served.log_path)
    return {
        "inspect_ms": inspect_ms,
        "list_ms": list_ms,
        "size": len(body),
        "rows": body.count(b'"Id"'),
        "server_inspect": server.get("GET /internal/v1/containers/{id}", [])[1:],
        "server_list": server.get("GET /internal/v1/containers", []),
    }


async def run(*, count: int = 10_000, inspects: int = 2000, lists: int = 10, starts: int = 3) -> ItemResult:
    result = ItemResult(
        "5",
        f"Store at scale: {count} containers",
        setup=(
            f"{count} exited containers bulk-inserted with `Store.add_containers` into a fresh file, "
            "then served by `sockerless serve lambda` (standalone simulator). Start-up = spawn → first "
            f"answer on the socket, median of {starts} starts (stores of 0 and {count} containers "
            f"alternating). Inspect: {inspects} sequential `GET /internal/v1/containers/{{id}}` of random "
            f"containers. List: {lists} times `GET /internal/v1/containers?all=1`, the first one after "
            "start-up (which encodes every row) reported apart; the figure is the median of the others, "
            "which re-encode the rows whose status text changed since (the containers exited seconds "
            "ago: their 'Exited (0) N seconds ago' changes every second). Times are client-side."
        ),
        command="python -m bench --only 5",
    )
    with bench_dir() as workdir:
        stores = {
            "empty": os.path.join(workdir, "empty.sqlite3"),
            "big": os.path.join(workdir, "big.sqlite3"),
        }
        fill_seconds = await fill_store(stores["big"], count)
        await fill_store(stores["empty"], 0)
        ids = await _ids(stores["big"])
        async with Simulator(workdir) as sim:
            startups = await measure_startups(workdir, sim, stores, starts)
            open_seconds = median([await time_open(stores["big"]) for _ in range(starts)])
            figures = await measure_requests(workdir, sim, stores["big"], ids, inspects, lists)
        parts = await handler_parts(stores["big"], lists)
    _report(result, count, figures, parts, startups, open_seconds, fill_seconds)
    return result


def _report(
    result: ItemResult,
    count: int,
    figures: dict[str, Any],
    all_parts: dict[str, dict[str, float]],
    startups: dict[str, float],
    open_seconds: float,
    fill_seconds: float,
) -> None:
    inspect_ms, list_ms = figures["inspect_ms"], figures["list_ms"]
    parts, paused = all_parts["list"], all_parts["list, collector paused"]
    server_inspect, server_list = figures["server_inspect"], figures["server_list"]
    rows, size = figures["rows"], figures["size"]
    p99 = percentile(inspect_ms, 99)
    first_list, list_median = list_ms[0], median(list_ms[1:])
    server_first, server_rest = server_list[0], median(server_list[1:])
    result.rows += [
        Row(
            "inspect p99",
            f"{p99:.2f} ms (p50 {median(inspect_ms):.2f}, max {max(inspect_ms):.2f})",
            f"≤ {TARGET_INSPECT_P99_MS:g} ms",
            p99 <= TARGET_INSPECT_P99_MS,
        ),
        Row(
            "list all",
            f"{list_median:.0f} ms median (max {max(list_ms[1:]):.0f}; {rows} rows, {size / 1e6:.1f} MB)",
            f"≤ {TARGET_LIST_MS:g} ms",
            list_median <= TARGET_LIST_MS,
        ),
        Row(
            "start-up to first answer",
            f"{startups['big']:.2f} s (empty store: {startups['empty']:.2f} s)",
            f"≤ {TARGET_STARTUP_S:g} s",
            startups["big"] <= TARGET_STARTUP_S,
        ),
        Row("first list all after start-up", f"{first_list:.0f} ms"),
    ]
    result.tables.append(
        Table(
            "Where inspect and list go: server-side durations (the backend's access log) and the list "
            "handler's steps timed in this process on the same store",
            ["part", "ms"],
            [
                [
                    "inspect, server-side p50 / p99 / max",
                    f"{median(server_inspect):.2f} / {percentile(server_inspect, 99):.2f} / "
                    f"{max(server_inspect, default=0):.2f}",
                ],
                [
                    "inspect, client-side p50 / p99 (adds HTTP, both processes' scheduling)",
                    f"{median(inspect_ms):.2f} / {p99:.2f}",
                ],
                [
                    "list all, server-side: first / median of the others",
                    f"{server_first:.0f} / {server_rest:.0f}",
                ],
                *[[f"list: {STEP_NAMES['list'][step]}", f"{parts[step]:.1f}"] for step in STEPS],
                [
                    "list: the same three steps with the garbage collector paused (the difference is the "
                    f"collections the rows' allocations trigger over the {count} records in memory)",
                    f"{sum(paused.values()):.0f} (of {sum(parts.values()):.0f})",
                ],
                [
                    "list all, client-side: first / median of the others",
                    f"{first_list:.0f} / {list_median:.0f}",
                ],
            ],
        )
    )
    if list_median > TARGET_LIST_MS:
        steps = "; ".join(f"{STEP_NAMES['list'][name]}: {parts[name]:.0f} ms" for name in STEPS)
        result.notes.append(
            f"What limits list: {server_rest:.0f} ms of the {list_median:.0f} ms are the server's "
            f"({steps}; timed in this process on the same store): the rows whose status text changed "
            f"since the last list are encoded again; the rest is moving {size / 1e6:.1f} MB over the socket."
        )
    if p99 > TARGET_INSPECT_P99_MS:
        result.notes.append(
            f"What limits inspect: the server answers in {percentile(server_inspect, 99):.2f} ms at p99 "
            "(its access log); the rest of the client-side p99 is HTTP and the scheduling of two "
            "processes on a shared 2-core machine."
        )
    if startups["big"] > TARGET_STARTUP_S:
        result.notes.append(
            f"What limits start-up: {startups['empty']:.2f} s with an empty store, plus loading the "
            f"{count} records ({open_seconds:.2f} s for `Store.open` alone)."
        )
    result.tables.append(
        Table(
            "Where start-up goes",
            ["part", "seconds"],
            [
                [
                    "process start to first answer, empty store (interpreter, imports, clients, log group)",
                    f"{startups['empty']:.2f}",
                ],
                [f"the same with {count} containers", f"{startups['big']:.2f}"],
                [f"`Store.open` of {count} containers in this process (load + index)", f"{open_seconds:.2f}"],
                [
                    f"bulk insert of {count} containers (`add_containers`, not part of start-up)",
                    f"{fill_seconds:.2f}",
                ],
            ],
        )
    )
    result.data.update(
        inspect_p99_ms=p99,
        list_ms=list_median,
        startup_s=startups["big"],
        startup_empty_s=startups["empty"],
        rows=rows,
    )


STEPS = ("records", "afresh", "cached")
#: What each step is, per request kind.
STEP_NAMES = {
    "list": {
        "records": "the records, newest first (`Store.containers`)",
        "afresh": "every row encoded afresh (a new `ViewCache`: the first list after start-up)",
        "cached": "the same list again, unchanged (`ViewCache.rows` from its cache)",
    },
    "inspect": {
        "records": "the record (`Store.resolve_container`)",
        "afresh": "its answer encoded afresh (a new `ViewCache`: the first inspect)",
        "cached": "the same inspect again, unchanged (`ViewCache.inspect` from its cache)",
    },
}


async def handler_parts(path: str, rounds: int, repeat: int = 1) -> dict[str, dict[str, float]]:
    """The steps of the list and inspect handlers (:data:`STEPS`), timed in this process on the store at
    ``path``: median ms over ``rounds`` after one to warm up (cattrs builds its functions on first use),
    a list ``repeat`` times a round, an inspect of up to 1000 containers each round. Each step as the
    Lambda backend runs it: find the records, encode their views with a new cache (a miss: the view,
    cattrs, the JSON), then again from the same cache (a hit). Each again as ``<kind>, collector
    paused`` with the garbage collector off: the steps' own work, without the collections their
    allocations trigger over everything the process holds (this process holds more than a server)."""
    store = await open_store(path)
    steps: dict[str, dict[str, list[float]]] = {
        kind: {step: [] for step in STEPS}
        for kind in ("list", "list, collector paused", "inspect", "inspect, collector paused")
    }

    def timed(kind: str, records: Callable[[], list[Any]], answer: Callable[[ViewCache, Any], Any]) -> None:
        marks = [time.perf_counter()]
        found = records()
        marks.append(time.perf_counter())
        views = ViewCache()
        answer(views, found)
        marks.append(time.perf_counter())
        answer(views, found)
        marks.append(time.perf_counter())
        for name, began, ended in zip(STEPS, marks[:-1], marks[1:], strict=True):
            steps[kind][name].append((ended - began) * 1000)

    def listed(views: ViewCache, records: list[Any]) -> Any:
        return views.rows("all", store.containers_revision, dt.datetime.now(dt.UTC), lambda: records)

    try:
        ids = [record.id for record in store.containers()][:1000]
        ViewCache().rows("warm-up", 0, dt.datetime.now(dt.UTC), store.containers)  # cattrs' functions
        for _ in range(rounds):
            for paused in (False, True):
                suffix = ", collector paused" if paused else ""
                if paused:
                    gc.disable()
                try:
                    for _ in range(repeat):
                        timed("list" + suffix, store.containers, listed)
                    for container_id in ids:
                        found = functools.partial(lambda cid: [store.resolve_container(cid)], container_id)
                        timed("inspect" + suffix, found, _inspected)
                finally:
                    gc.enable()
        return {
            kind: {step: median(values) for step, values in parts.items()} for kind, parts in steps.items()
        }
    finally:
        await store.close()


def _inspected(views: ViewCache, records: list[Any]) -> Any:
    return views.inspect(records[0])


async def _ids(path: str) -> list[str]:
    store = await open_store(path)
    try:
        return [record.id for record in store.containers()]
    finally:
        await store.close()


async def _get(session: Any, path: str) -> bytes:
    async with session.get(path) as response:
        response.raise_for_status()
        body: bytes = await response.read()
        return body
