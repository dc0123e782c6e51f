"""What every benchmark item shares: results, statistics, interleaved rounds, the machine, the logs.

The processes an item starts are in :mod:`bench.processes`, the AWS clients of the floors in
:mod:`bench.aws`, the docker CLI in :mod:`bench.docker_cli`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from attrs import define, field

__all__ = [
    "BACKEND_SETTINGS",
    "IMAGE",
    "SIMULATOR_SETTINGS",
    "ItemResult",
    "Row",
    "Table",
    "access_durations",
    "access_entries",
    "backend_flags",
    "cpu_seconds",
    "interleave",
    "log_entries",
    "log_size",
    "machine_info",
    "median",
    "percentile",
    "round_order",
    "rss_kb",
    "simulator_flags",
    "verdict",
]

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:latest"
#: ``LambdaSimulator`` arguments of every simulator of the bench, where it departs from the simulator's
#: defaults (AWS's): new functions are Active at once and the request quotas are off. The items measure
#: our own overhead and count our AWS calls; a fixed wait per new function (with the GetFunction polls
#: it brings, their number set by timing) and the throttles of variants sharing one simulator's quota
#: would swamp both. The tests keep AWS's Pending (shorter) and quotas (tests/lambda_settings.py).
SIMULATOR_SETTINGS: dict[str, Any] = {
    "pending_seconds": 0.0,
    "control_plane_rate": None,
    "get_function_rate": None,
    # CloudWatch's delivery delay, its empty pages and Event invocations' queue: AWS's waits, not ours.
    "log_delivery_delay": 0.0,
    "empty_page_every": 0,
    "event_delay": 0.0,
    # Items 1 to 7 measure the path they were written for, before issue 20: the command as the
    # function's ImageConfig, one process per invocation (the simulator's direct model), the output from
    # the log tail and CloudWatch; their "direct" variants invoke such functions themselves, which in
    # Lambda's model would run the command twice (Init, then Init again in the invoke). Item 8 measures
    # the bootstrap's path and sets runtime_model lambda and the backend's bootstrap itself.
    "runtime_model": "direct",
}
#: The backends' settings where they depart from the product's defaults: with the simulator's quotas
#: off, the client-side pacing of the control plane (10/s, for AWS's 15/s) would be all item 1 and
#: item 4 measure of a burst of creates, so it is set far above any burst here.
#: ``bootstrap`` off: items 1 to 7 measure the path before the bootstrap (see SIMULATOR_SETTINGS).
BACKEND_SETTINGS: dict[str, Any] = {
    "control_plane_rate": 1000.0,
    "get_function_rate": 1000.0,
    "bootstrap": False,
    "prepare_images": False,  # the bench's images are references only (no registry, no network)
}


def backend_flags() -> list[str]:
    """``BACKEND_SETTINGS`` as ``sockerless serve lambda``/``up`` flags (booleans as ``--[no-]lambda-X``)."""
    flags = []
    for name, value in BACKEND_SETTINGS.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--lambda-{flag}" if value else f"--no-lambda-{flag}")
        else:
            flags.append(f"--lambda-{flag}={value}")
    return flags


def simulator_flags() -> list[str]:
    """``SIMULATOR_SETTINGS`` as ``sockerless-lambda-simulator`` flags."""
    flags: list[str] = []
    for name, value in SIMULATOR_SETTINGS.items():
        flags += [f"--{name.replace('_', '-')}", "none" if value is None else str(value)]
    return flags


T = TypeVar("T")


# ---------------------------------------------------------------------------- results


@define
class Row:
    """One figure of an item: its value, its target and whether the value meets it."""

    figure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: informational, no target


@define
class Table:
    """A supporting table (a breakdown, per-operation counts, ...)."""

    title: str
    headers: list[str]
    rows: list[list[str]]


@define
class ItemResult:
    number: str
    title: str
    setup: str
    command: str
    rows: list[Row] = field(factory=list)
    tables: list[Table] = field(factory=list)
    notes: list[str] = field(factory=list)
    seconds: float = 0.0
    data: dict[str, Any] = field(factory=dict)
    """Raw figures (numbers), for tests and for anyone scripting the benchmark."""

    def all_met(self) -> bool | None:
        verdicts = [row.met for row in self.rows if row.met is not None]
        return all(verdicts) if verdicts else None

    def target(self, figure: str, value: str, target: str, met: bool) -> None:
        self.rows.append(Row(figure, value, target, met))

    def info(self, figure: str, value: str) -> None:
        self.rows.append(Row(figure, value))


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "**NOT met**")


# ---------------------------------------------------------------------------- statistics


def median(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else float("nan")


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): a value that was actually observed."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------- interleaved rounds


def round_order(variants: Sequence[str], turn: int) -> list[str]:
    """The order of a round: rotated by one each turn, and reversed every other cycle of rotations,
    so that each variant runs first, last and after each other equally often (two variants:
    AB, BA, BA, AB, ...)."""
    names = list(variants)
    shift = turn % len(names)
    order = names[shift:] + names[:shift]
    if (turn // len(names)) % 2:
        order.reverse()
    return order


async def interleave(
    rounds: int,
    variants: Callable[[int], Sequence[str]],
    measure: Callable[[str], Awaitable[T]],
) -> list[dict[str, T]]:
    """``rounds`` rounds, each measuring the variants ``variants(round)`` names back to back in the
    order :func:`round_order` gives (counted per set of variants); one sample per variant and round."""
    turns: dict[tuple[str, ...], int] = defaultdict(int)
    samples: list[dict[str, T]] = []
    for index in range(rounds):
        names = tuple(variants(index))
        sample: dict[str, T] = {}
        for name in round_order(names, turns[names]):
            sample[name] = await measure(name)
        turns[names] += 1
        samples.append(sample)
    return samples


# ---------------------------------------------------------------------------- the machine


def _first_field(path: str, prefix: str) -> str | None:
    """The text after ``prefix`` on the first line of ``path`` that starts with it."""
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    return None


def machine_info() -> dict[str, str]:
    cpu = (_first_field("/proc/cpuinfo", "model name") or "").lstrip(": \t") or platform.processor()
    memory = _first_field("/proc/meminfo", "MemTotal:")
    return {
        "nproc": str(os.cpu_count() or "?"),
        "memory": f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown",
        "cpu": cpu or "unknown",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process (this one when ``pid`` is None), in seconds."""
    if pid is None:
        return time.process_time()
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)
    return 0.0


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in KiB (0 when it is gone)."""
    value = _first_field(f"/proc/{pid}/status", "VmRSS:")
    return int(value.split()[0]) if value else 0


# ---------------------------------------------------------------------------- the product's logs


def log_size(log_path: str) -> int:
    try:
        return os.path.getsize(log_path)
    except OSError:
        return 0


def log_entries(log_path: str, offset: int = 0) -> list[dict[str, Any]]:
    """The JSON lines of a product's log (stderr), from byte ``offset``."""
    entries = []
    with contextlib.suppress(OSError), open(log_path, encoding="utf-8", errors="replace") as log_file:
        log_file.seek(offset)
        for line in log_file:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
    return entries


#: A container's ID or name in a path (but not the ``create``, ``json`` and ``prune`` verbs).
_CONTAINER_SEGMENT = re.compile(r"(?<=/containers/)(?!(?:create|json|prune)(?:/|$))[^/]+")


def access_entries(log_path: str, offset: int = 0) -> list[dict[str, Any]]:
    """The access lines (logger ``sockerless.access``: one per request, written when it ends), each
    with ``route``: ``METHOD path`` with the container (ID or name) as ``{id}``."""
    found = []
    for entry in log_entries(log_path, offset):
        if entry.get("logger") == "sockerless.access":
            entry["route"] = f"{entry.get('method')} " + _CONTAINER_SEGMENT.sub(
                "{id}", str(entry.get("path", ""))
            )
            found.append(entry)
    return found


def access_durations(log_path: str, offset: int = 0) -> dict[str, list[float]]:
    """Server-side durations (ms) per ``METHOD route`` from a product's access lines, from ``offset``."""
    found: dict[str, list[float]] = defaultdict(list)
    for entry in access_entries(log_path, offset):
        found[entry["route"]].append(float(entry.get("duration_ms", 0)))
    return dict(found)
