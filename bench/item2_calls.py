"""Item 2: AWS calls per container lifecycle, counted per operation from the simulator's stats.

``sockerless serve lambda`` on a standalone simulator; each container goes through its phases one
at a time and the simulator's counters are read around each phase, so every call is charged to
the phase that caused it. The run's output fits the Invoke's 4 KB log tail, so it is complete when
the run ends: reading it costs nothing. Only the lines' own times (``logs -t``) need CloudWatch:
one shared read, after which they are kept. Those reads are spaced so that the backend's shared
CloudWatch reader is due (it reads at most once per ``log_read_interval``, 1 s by default): the
counts are the most a ``docker logs`` can cost, not the luck of a recent read.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable
from typing import TypeVar

from sockerless.api.client import BackendClient
from sockerless.backend import LogsOptions
from sockerless.models import WaitCondition
from sockerless.streams import decode_frames

from .common import IMAGE, ItemResult, Table
from .processes import CLOUDWATCH_READS, Simulator, bench_dir, diff_calls, sockerless

COMMAND = ["sh", "-c", "echo hi; echo there"]
OUTPUT = b"hi\nthere\n"
READER_INTERVAL = 1.0  # the backend's default log_read_interval
T = TypeVar("T")

PHASES = [
    "create",
    "start + wait for exit",
    "inspect, list, wait (exited)",
    "logs (at once after the exit)",
    "logs -f (exited: ends at once)",
    "logs again after 1.2 s",
    "logs -t (first with timestamps, reader due)",
    "logs -t again (at once)",
    "logs -t after 1.2 s",
    "remove",
]
#: The phases that read output, and the reads each may cost: the output is complete at the exit, and
#: only the first read that wants the lines' own times goes to CloudWatch.
READS_ALLOWED = {
    "logs (at once after the exit)": 0,
    "logs -f (exited: ends at once)": 0,
    "logs again after 1.2 s": 0,
    "logs -t (first with timestamps, reader due)": 1,
    "logs -t again (at once)": 0,
    "logs -t after 1.2 s": 0,
}


async def _logs(client: BackendClient, container_id: str, options: LogsOptions) -> bytes:
    """The output; with timestamps, each line without its time (checked to be there)."""
    data = b""
    async with client.container_logs(container_id, options) as stream:
        async for chunk in stream.chunks():
            data += chunk
    payloads = [payload for _, payload in decode_frames(data)[0]]
    if not options.timestamps:
        return b"".join(payloads)
    stamped = [payload.split(b" ", 1) for payload in payloads]
    return b"".join(line[1] for line in stamped if len(line) == 2 and line[0][:4].isdigit())


class _Counter:
    """Charges the simulator's calls to phases."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self.counted: dict[str, dict[str, int]] = {phase: defaultdict(int) for phase in PHASES}

    async def phase(self, name: str, work: Awaitable[T]) -> T:
        before = await self._sim.calls()
        value = await work
        for key, count in diff_calls(await self._sim.calls(), before).items():
            self.counted[name][key] += count
        return value


async def _lifecycle(client: BackendClient, counter: _Counter) -> bool:
    """One container through every phase; whether every read returned the whole output."""
    phase = counter.phase
    created = await phase("create", client.create_container({"Image": IMAGE, "Cmd": COMMAND}, None))
    cid = created.id

    async def start_and_wait() -> int:
        async with client.wait_container(cid, WaitCondition.NEXT_EXIT) as pending:
            await client.start_container(cid)
            return (await pending.result()).status_code

    async def lookups() -> None:
        await client.inspect_container(cid)
        await client.list_containers(all=True)
        async with client.wait_container(cid, WaitCondition.NOT_RUNNING) as pending:
            await pending.result()

    plain, stamped = LogsOptions(), LogsOptions(timestamps=True)
    code = await phase("start + wait for exit", start_and_wait())
    await phase("inspect, list, wait (exited)", lookups())
    outputs = [await phase("logs (at once after the exit)", _logs(client, cid, plain))]
    outputs.append(
        await phase("logs -f (exited: ends at once)", _logs(client, cid, LogsOptions(follow=True)))
    )
    await asyncio.sleep(READER_INTERVAL + 0.2)
    outputs.append(await phase("logs again after 1.2 s", _logs(client, cid, plain)))
    await asyncio.sleep(READER_INTERVAL + 0.1)
    outputs.append(await phase("logs -t (first with timestamps, reader due)", _logs(client, cid, stamped)))
    outputs.append(await phase("logs -t again (at once)", _logs(client, cid, stamped)))
    await asyncio.sleep(READER_INTERVAL + 0.2)
    outputs.append(await phase("logs -t after 1.2 s", _logs(client, cid, stamped)))
    await phase("remove", client.remove_container(cid))
    return code == 0 and all(output == OUTPUT for output in outputs)


async def run(*, containers: int = 3) -> ItemResult:
    result = ItemResult(
        "2",
        "AWS calls per lifecycle",
        setup=(
            f"{containers} containers `sh -c 'echo hi; echo there'`, one at a time, through the internal "
            "API of `sockerless serve lambda` (defaults: RequestResponse invocations, one shared "
            "CloudWatch reader at 1 read/s). Calls are the simulator's per-operation counters, read "
            "before and after each phase. The output is read at once after the exit (the Invoke's log "
            "tail holds the whole run: its output is complete at the exit, with no CloudWatch read), "
            "followed (`follow=1`, which ends at once for an exited container), and again after the "
            "reader's interval. `logs -t` (the lines' own times, which only CloudWatch has) comes when "
            "the reader is due, then at once and after the reader's interval again."
        ),
        command="python -m bench --only 2",
    )
    outputs_ok = True
    with bench_dir() as workdir:
        async with Simulator(workdir) as sim:
            start_calls = await sim.calls()
            async with sockerless(workdir, sim) as served, BackendClient(served.url) as client:
                await asyncio.sleep(0.5)  # the start-up's background orphan scan
                startup = diff_calls(await sim.calls(), start_calls)
                counter = _Counter(sim)
                for _ in range(containers):
                    outputs_ok = await _lifecycle(client, counter) and outputs_ok
    _report(result, counter.counted, startup, containers)
    result.target(
        "every logs read returned the whole output", "yes" if outputs_ok else "NO", "yes", outputs_ok
    )
    return result


def _report(
    result: ItemResult, counted: dict[str, dict[str, int]], startup: dict[str, int], containers: int
) -> None:
    operations = sorted({key for phase in counted.values() for key in phase})

    def per(phase: str, *ops: str) -> float:
        """Calls per container in ``phase``: of ``ops``, or of every operation."""
        return sum(count for op, count in counted[phase].items() if not ops or op in ops) / containers

    def add(figure: str, value: float, target: str, limit: float) -> None:
        result.target(figure, f"{value:g}", target, value <= limit)
        result.data[figure] = value

    ready = ("lambda:GetFunctionConfiguration", "lambda:GetFunction")
    add("create: CreateFunction", per("create", "lambda:CreateFunction"), "≤ 1", 1)
    add("create: other calls", per("create") - per("create", "lambda:CreateFunction"), "0", 0)
    add("start: readiness check", per("start + wait for exit", *ready), "≤ 1", 1)
    add("start: Invoke", per("start + wait for exit", "lambda:Invoke"), "≤ 1", 1)
    started = per("start + wait for exit") - per("start + wait for exit", "lambda:Invoke", *ready)
    add("start + wait: other calls", started, "0", 0)
    add("inspect + list + wait: any call", per("inspect, list, wait (exited)"), "0", 0)
    for phase, allowed in READS_ALLOWED.items():
        add(f"{phase}: calls", per(phase), f"≤ {allowed} CloudWatch read" if allowed else "0", allowed)
    add("remove: DeleteFunction", per("remove", "lambda:DeleteFunction"), "≤ 1", 1)
    add("remove: other calls", per("remove") - per("remove", "lambda:DeleteFunction"), "0", 0)
    rows = [
        [phase, *[f"{counted[phase].get(op, 0) / containers:g}" for op in operations]] for phase in PHASES
    ]
    rows.append(
        [
            "**whole lifecycle**",
            *[f"{sum(c.get(op, 0) for c in counted.values()) / containers:g}" for op in operations],
        ]
    )
    result.tables += [
        Table("AWS calls per container, by phase and operation", ["phase", *operations], rows),
        Table(
            "Start-up calls (once per backend process, not per container)",
            ["operation", "calls"],
            [[key, str(value)] for key, value in startup.items()],
        ),
    ]
    result.data["cloudwatch_reads_per_lifecycle"] = sum(per(phase, *CLOUDWATCH_READS) for phase in PHASES)
