"""Item 2: AWS calls per container lifecycle, counted per operation from the simulator's stats.

``sockerless serve lambda`` on a standalone simulator; each container goes through its phases one
at a time and the simulator's counters are read around each phase, so every call is charged to
the phase that caused it. The logs phases are spaced so that the backend's shared CloudWatch
reader is due (it reads at most once per ``log_read_interval``, 1 s by default): the counts are
the most a ``docker logs`` can cost, not the luck of a recent read.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from typing import Any

from sockerless.backend import LogsOptions
from sockerless.client import BackendClient
from sockerless.models import WaitCondition
from sockerless.streams import decode_frames

from .common import (
    CLOUDWATCH_READS,
    IMAGE,
    ItemResult,
    Row,
    Simulator,
    Table,
    bench_dir,
    diff_calls,
    product,
    serve_argv,
)

COMMAND = ["sh", "-c", "echo hi; echo there"]
READER_INTERVAL = 1.0  # the backend's default log_read_interval
SETTLE_SECONDS = 3.0  # containers.LOG_SETTLE_SECONDS: after it, a finished run's logs are kept for good


async def _logs(client: BackendClient, container_id: str, *, timestamps: bool = False) -> bytes:
    """The output; with ``timestamps``, each line without its time (checked to be there)."""
    data = b""
    async with client.container_logs(container_id, LogsOptions(timestamps=timestamps)) as stream:
        async for chunk in stream.chunks():
            data += chunk
    frames, _ = decode_frames(data)
    if not timestamps:
        return b"".join(payload for _, payload in frames)
    stamped = [payload.split(b" ", 1) for _, payload in frames]
    return b"".join(line[1] for line in stamped if len(line) == 2 and line[0][:4].isdigit())


async def run(*, containers: int = 3) -> ItemResult:
    result = ItemResult(
        "2",
        "AWS calls per lifecycle",
        setup=(
            f"{containers} containers `sh -c 'echo hi; echo there'`, one at a time, through the internal "
            "API of `sockerless serve lambda` (defaults: RequestResponse invocations, one shared "
            "CloudWatch reader at 1 read/s). Calls are the simulator's per-operation counters, read "
            "before and after each phase. Before the first `logs` the bench waits 1.1 s so that the "
            "shared reader is due (worst case); `logs again` follows at once, `logs after 1.2 s` "
            "after the reader's interval. `logs -t` (the lines' own times, which only CloudWatch has) "
            "comes when the reader is due again, `logs -t again` at once, `logs after settle` 3.5 s "
            "later (past the settle delay after the reader saw the run's END line)."
        ),
        command="python -m bench --only 2",
    )
    phases = [
        "create",
        "start + wait for exit",
        "inspect, list, wait (exited)",
        "logs (first, reader due)",
        "logs again (at once)",
        "logs after 1.2 s",
        "logs -t (first with timestamps, reader due)",
        "logs -t again (at once)",
        "logs after settle",
        "logs after settle, again",
        "remove",
    ]
    counted: dict[str, dict[str, int]] = {phase: defaultdict(int) for phase in phases}
    outputs_ok = True
    with bench_dir() as workdir:
        sim = Simulator(workdir)
        try:
            await sim.start()
            socket = os.path.join(workdir, "backend.sock")
            store = os.path.join(workdir, "lambda.sqlite3")
            argv = serve_argv(workdir, sim, socket=socket, store=store)
            start_calls = await sim.calls()
            async with (
                product(workdir, "serve", argv, socket, "/internal/v1/capabilities"),
                BackendClient(f"unix://{socket}") as client,
            ):
                await asyncio.sleep(0.5)  # the start-up's background orphan scan
                startup = diff_calls(await sim.calls(), start_calls)
                for _ in range(containers):
                    marks: dict[str, dict[str, int]] = {}

                    async def phase(name: str, work: Any, marks: dict[str, dict[str, int]] = marks) -> Any:
                        before = await sim.calls()
                        value = await work
                        for key, count in diff_calls(await sim.calls(), before).items():
                            counted[name][key] += count
                        return value

                    created = await phase(
                        "create", client.create_container({"Image": IMAGE, "Cmd": COMMAND}, None)
                    )
                    cid = created.id

                    async def start_and_wait(cid: str = cid) -> int:
                        async with client.wait_container(cid, WaitCondition.NEXT_EXIT) as pending:
                            await client.start_container(cid)
                            return (await pending.result()).status_code

                    code = await phase("start + wait for exit", start_and_wait())

                    async def lookups(cid: str = cid) -> None:
                        await client.inspect_container(cid)
                        await client.list_containers(all=True)
                        async with client.wait_container(cid, WaitCondition.NOT_RUNNING) as pending:
                            await pending.result()

                    await phase("inspect, list, wait (exited)", lookups())
                    await asyncio.sleep(READER_INTERVAL + 0.1)
                    first = await phase("logs (first, reader due)", _logs(client, cid))
                    again = await phase("logs again (at once)", _logs(client, cid))
                    await asyncio.sleep(READER_INTERVAL + 0.2)
                    later = await phase("logs after 1.2 s", _logs(client, cid))
                    await asyncio.sleep(READER_INTERVAL + 0.1)
                    timed = await phase(
                        "logs -t (first with timestamps, reader due)", _logs(client, cid, timestamps=True)
                    )
                    timed_again = await phase("logs -t again (at once)", _logs(client, cid, timestamps=True))
                    await asyncio.sleep(SETTLE_SECONDS + 0.5)
                    settled = await phase("logs after settle", _logs(client, cid))
                    final = await phase("logs after settle, again", _logs(client, cid, timestamps=True))
                    await phase("remove", client.remove_container(cid))
                    expected = b"hi\nthere\n"
                    outputs_ok = outputs_ok and code == 0
                    outputs_ok = outputs_ok and all(
                        out == expected for out in (first, again, later, timed, timed_again, settled, final)
                    )
        finally:
            await sim.stop()

    operations = sorted({key for phase in counted.values() for key in phase})
    table_rows = []
    for phase_name in phases:
        row = [phase_name]
        for op in operations:
            value = counted[phase_name].get(op, 0) / containers
            row.append(f"{value:g}" if value else "0")
        table_rows.append(row)
    table_rows.append(
        ["**whole lifecycle**"]
        + [f"{sum(c.get(op, 0) for c in counted.values()) / containers:g}" for op in operations]
    )
    result.tables.append(
        Table("AWS calls per container, by phase and operation", ["phase", *operations], table_rows)
    )
    result.tables.append(
        Table(
            "Start-up calls (once per backend process, not per container)",
            ["operation", "calls"],
            [[key, str(value)] for key, value in startup.items()],
        )
    )

    def per(phase_name: str, *ops: str) -> float:
        return sum(counted[phase_name].get(op, 0) for op in ops) / containers

    def others(phase_name: str, allowed: set[str]) -> float:
        return sum(v for k, v in counted[phase_name].items() if k not in allowed) / containers

    def add(figure: str, value: float, target: str, met: bool) -> None:
        result.rows.append(Row(figure, f"{value:g}", target, met))
        result.data[figure] = value

    reads = CLOUDWATCH_READS
    add(
        "create: CreateFunction",
        per("create", "lambda:CreateFunction"),
        "≤ 1",
        per("create", "lambda:CreateFunction") <= 1,
    )
    add(
        "create: other calls",
        others("create", {"lambda:CreateFunction"}),
        "0",
        others("create", {"lambda:CreateFunction"}) == 0,
    )
    ready = per("start + wait for exit", "lambda:GetFunctionConfiguration", "lambda:GetFunction")
    add("start: readiness check", ready, "≤ 1", ready <= 1)
    invokes = per("start + wait for exit", "lambda:Invoke")
    add("start: Invoke", invokes, "≤ 1", invokes <= 1)
    extra = others(
        "start + wait for exit", {"lambda:Invoke", "lambda:GetFunctionConfiguration", "lambda:GetFunction"}
    )
    add("start + wait: other calls", extra, "0", extra == 0)
    lookups_calls = sum(counted["inspect, list, wait (exited)"].values()) / containers
    add("inspect + list + wait: any call", lookups_calls, "0", lookups_calls == 0)
    first_reads = sum(counted["logs (first, reader due)"].values()) / containers
    add("first logs of a finished container: calls", first_reads, "≤ 1 CloudWatch read", first_reads <= 1)
    timed_reads = sum(counted["logs -t (first with timestamps, reader due)"].values()) / containers
    add("first logs -t of a finished container: calls", timed_reads, "≤ 1 CloudWatch read", timed_reads <= 1)
    for name in (
        "logs again (at once)",
        "logs after 1.2 s",
        "logs -t again (at once)",
        "logs after settle",
        "logs after settle, again",
    ):
        value = sum(counted[name].values()) / containers
        add(f"repeated read, {name.removeprefix('logs ')}: calls", value, "0", value == 0)
    deletes = per("remove", "lambda:DeleteFunction")
    add("remove: DeleteFunction", deletes, "≤ 1", deletes <= 1)
    add(
        "remove: other calls",
        others("remove", {"lambda:DeleteFunction"}),
        "0",
        others("remove", {"lambda:DeleteFunction"}) == 0,
    )
    result.rows.append(
        Row("every logs read returned the whole output", "yes" if outputs_ok else "NO", "yes", outputs_ok)
    )
    repeated = (
        sum(
            sum(counted[name].values())
            for name in ("logs after 1.2 s", "logs -t again (at once)", "logs after settle")
        )
        / containers
    )
    if repeated:
        result.notes.append(
            "What limits it: a read with timestamps goes to CloudWatch until the run's logs settle "
            "(kept for good), which needs CloudWatch to show the whole run; until then a read more "
            f"than one reader interval (1 s) after the last triggers a shared FilterLogEvents: "
            f"{repeated:g} extra read(s) per container here."
        )
    result.notes.append(
        "Reads without timestamps, since or until cost no CloudWatch read when the Invoke's log tail "
        "(`LogType=Tail`, kept in `log_tail`) holds the whole run, START to END: the output is complete "
        "without CloudWatch, and only the lines' own times are missing from it."
    )
    result.data["cloudwatch_reads_per_lifecycle"] = (
        sum(sum(c.get(op, 0) for op in reads) for c in counted.values()) / containers
    )
    return result
