"""Item 7: internal-API throughput, against a bare aiohttp server that sends the same bytes.

``sockerless serve lambda`` (the real backend, on a standalone simulator) serves its internal API on
TCP loopback from a store of exited containers. Its answers to ``GET /internal/v1/containers/{id}``
(inspect, each container) and ``GET /internal/v1/containers?all=1`` (the whole list) are captured and
handed to :mod:`bench.floor_server`, a bare aiohttp server that answers each path with those bytes:
the floor of any aiohttp server that sends them. Both are loaded by the same generator with 50
keep-alive connections, each sending its next request as soon as the last answer is read: ``wrk``
(C, far cheaper per request than either server) when it is installed, else :mod:`bench.loadgen`
(aiohttp) in its own process. Rounds interleave the four variants (two servers, two requests).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys

import aiohttp

from .common import ItemResult, Table, cpu_seconds, interleave, median
from .item5_store import STEPS, fill_store, handler_parts
from .processes import Product, Simulator, bench_dir, free_port, product, product_env, run_command, sockerless

#: The handler's steps (item 5's :func:`handler_parts`) as this item's table names them.
STEP_TITLES = {
    "records": "the record or records",
    "afresh": "the answer encoded afresh (a miss of the backend's view cache)",
    "cached": "the answer from the view cache (a hit: what every request here takes)",
}
TARGET_SHARE = 0.5
TARGET_P99_MS = 15.0
CONNECTIONS = 50
WRK = shutil.which("wrk")
#: The servers: the product, the product without access lines (log level warning), the floor.
SERVERS = {
    "sockerless": "sockerless",
    "quiet": "sockerless without access lines",
    "floor": "floor (bare aiohttp, same bytes)",
}
REQUESTS = ("inspect", "list")
LIST = "/internal/v1/containers?all=1"
#: The wrk script: the paths in turn, and the figures as one JSON line at the end.
_WRK_SCRIPT = """
local paths = {%s}
local index = 0
request = function()
  index = index %% #paths + 1
  return wrk.format("GET", paths[index])
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %%d, "duration_us": %%d, "status": %%d, "errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


async def capture(base_url: str, paths: list[str]) -> dict[str, dict[str, str]]:
    """The backend's answers to ``paths``: content type and body (base64), for the floor."""
    answers = {}
    async with aiohttp.ClientSession(base_url=base_url) as session:
        for path in paths:
            async with session.get(path) as response:
                response.raise_for_status()
                body = await response.read()
                answers[path] = {
                    "content_type": response.headers["Content-Type"],
                    "body": base64.b64encode(body).decode(),
                }
    return answers


async def same_bytes(base_url: str, answers: dict[str, dict[str, str]]) -> bool:
    async with aiohttp.ClientSession(base_url=base_url) as session:
        for path, expected in answers.items():
            async with session.get(path) as response:
                if base64.b64encode(await response.read()).decode() != expected["body"]:
                    return False
    return True


class LoadGenerator:
    """``wrk`` or :mod:`bench.loadgen`, CONNECTIONS connections, one run per call."""

    def __init__(self, workdir: str, seconds: float) -> None:
        self._workdir = workdir
        self._seconds = seconds
        self.tool = "wrk" if WRK else "bench.loadgen"

    async def __call__(self, base_url: str, paths: list[str]) -> dict[str, float]:
        if WRK:
            script = os.path.join(self._workdir, f"paths-{len(paths)}.lua")
            with open(script, "w", encoding="utf-8") as lua:
                lua.write(_WRK_SCRIPT % ", ".join(json.dumps(path) for path in paths))
            argv = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{self._seconds:g}s", "--timeout", "10s", "-s", script]
            argv.append(base_url)
        else:
            argv = [
                sys.executable,
                "-m",
                "bench.loadgen",
                base_url,
                str(CONNECTIONS),
                f"{self._seconds:g}",
                *paths,
            ]
        code, out, err = await run_command(argv, product_env(self._workdir), timeout=self._seconds + 60)
        if code != 0:
            raise RuntimeError(f"{self.tool} failed: {err.strip()[-500:]}")
        figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return figures


async def run(*, rounds: int = 3, seconds: float = 5.0, containers: int = 50) -> ItemResult:
    result = ItemResult(
        "7",
        "Internal-API throughput",
        setup=(
            "`sockerless serve lambda` on TCP loopback (standalone simulator), its store holding "
            f"{containers} exited containers (`Store.add_containers`, as item 5), against a bare aiohttp "
            "server that answers each path with the bytes captured from the backend's answers "
            "(`bench/floor_server.py`: one handler, no middlewares, no access log), and a second "
            "`sockerless serve lambda` at log level warning (no access lines), to show what they cost. "
            "Requests: "
            f"`GET /internal/v1/containers/{{id}}` (inspect, the {containers} containers in turn) and, "
            f"separately, `GET {LIST}` (the list of {containers}). Load: {CONNECTIONS} concurrent "
            "keep-alive connections, each sending its next request when the last answer is read, for "
            f"{seconds:g} s per variant, "
            + (
                "by `wrk` (C, one thread)"
                if WRK
                else "by `bench/loadgen.py` (an aiohttp client in its own process; `wrk` is not installed, "
                "and this client needs about as much CPU per request as the servers, so it narrows the "
                "difference it measures)"
            )
            + f". {rounds} rounds, the six variants' order rotating. Figures: medians over rounds."
        ),
        command="python -m bench --only 7",
    )
    with bench_dir() as workdir:
        store, quiet_store = (os.path.join(workdir, f"{name}.sqlite3") for name in ("populated", "quiet"))
        await fill_store(store, containers)
        shutil.copyfile(store, quiet_store)  # the same containers for the server without access lines
        async with (
            Simulator(workdir) as sim,
            sockerless(workdir, sim, store=store, tcp=f"127.0.0.1:{free_port()}") as served,
            sockerless(
                workdir,
                sim,
                name="quiet",
                store=quiet_store,
                tcp=f"127.0.0.1:{free_port()}",
                extra=["--server-log-level", "warning"],
            ) as quiet,
        ):
            listed = await capture(served.url, [LIST])
            ids = [row["Id"] for row in json.loads(base64.b64decode(listed[LIST]["body"]))]
            paths = {"inspect": [f"/internal/v1/containers/{cid}" for cid in ids], "list": [LIST]}
            answers = {**listed, **await capture(served.url, paths["inspect"])}
            answers_file = os.path.join(workdir, "answers.json")
            with open(answers_file, "w", encoding="utf-8") as out:
                json.dump(answers, out)
            floor_url = f"http://127.0.0.1:{free_port()}"
            floor_argv = [
                sys.executable,
                "-m",
                "bench.floor_server",
                floor_url.rpartition(":")[2],
                answers_file,
            ]
            async with product(workdir, "floor", floor_argv, floor_url, LIST) as floor:
                identical = await same_bytes(floor_url, answers)
                servers = {
                    "sockerless": (served.url, served.process),
                    "quiet": (quiet.url, quiet.process),
                    "floor": (floor_url, floor),
                }
                figures = await _measure(workdir, rounds, seconds, servers, paths)
        parts = await handler_parts(store, 10, repeat=50)
    sizes = {request: len(base64.b64decode(answers[paths[request][0]]["body"])) for request in REQUESTS}
    _report(result, figures, identical, sizes, parts)
    return result


async def _measure(
    workdir: str,
    rounds: int,
    seconds: float,
    servers: dict[str, tuple[str, Product]],
    paths: dict[str, list[str]],
) -> dict[str, list[dict[str, float]]]:
    """Per variant (``server request``), the load generator's figures of each round, with the server
    process's CPU milliseconds per request."""
    generator = LoadGenerator(workdir, seconds)
    warm = LoadGenerator(workdir, min(1.0, seconds))

    async def measure(variant: str) -> dict[str, float]:
        server, request = variant.split(" ")
        url, process = servers[server]
        before = cpu_seconds(process.pid)
        figures = await generator(url, paths[request])
        figures["cpu_ms_per_request"] = (
            (cpu_seconds(process.pid) - before) * 1000 / max(1, figures["requests"])
        )
        return figures

    variants = [f"{server} {request}" for request in REQUESTS for server in SERVERS]
    for variant in variants:
        server, request = variant.split(" ")
        await warm(servers[server][0], paths[request])
    samples = await interleave(rounds, lambda _: variants, measure)
    return {variant: [sample[variant] for sample in samples] for variant in variants}


def _ms(samples: list[dict[str, float]], key: str) -> float:
    """The median over rounds of a latency figure, in ms."""
    return median(sample[key] / 1000 for sample in samples)


def _rate(figures: dict[str, float]) -> float:
    return figures["requests"] / (figures["duration_us"] / 1e6)


def _report(
    result: ItemResult,
    figures: dict[str, list[dict[str, float]]],
    identical: bool,
    sizes: dict[str, int],
    parts: dict[str, dict[str, float]],
) -> None:
    for request in REQUESTS:
        ours, floor = figures[f"sockerless {request}"], figures[f"floor {request}"]
        share = median(_rate(a) / _rate(b) for a, b in zip(ours, floor, strict=True))
        p99 = _ms(ours, "p99_us")
        result.target(
            f"{request}: requests/s, sockerless / floor",
            f"{share:.2f} ({median(map(_rate, ours)):,.0f}/s vs {median(map(_rate, floor)):,.0f}/s)",
            f"≥ {TARGET_SHARE}",
            share >= TARGET_SHARE,
        )
        result.target(
            f"{request}: sockerless p99 latency",
            f"{p99:.1f} ms (p50 {_ms(ours, 'p50_us'):.1f}; floor p99 {_ms(floor, 'p99_us'):.1f}, "
            f"p50 {_ms(floor, 'p50_us'):.1f})",
            f"≤ {TARGET_P99_MS:g} ms",
            p99 <= TARGET_P99_MS,
        )
        quiet = figures[f"quiet {request}"]
        quiet_share = median(_rate(a) / _rate(b) for a, b in zip(quiet, floor, strict=True))
        result.info(f"{request}: requests/s, sockerless without access lines / floor", f"{quiet_share:.2f}")
        result.data[f"{request}_share"] = share
        result.data[f"{request}_quiet_share"] = quiet_share
        result.data[f"{request}_p99_ms"] = p99
    failures = sum(s["status"] + s.get("errors", 0) for samples in figures.values() for s in samples)
    result.target("answers not 2xx, and connection errors", str(int(failures)), "0", failures == 0)
    result.target("the floor sends the backend's bytes", "yes" if identical else "NO", "yes", identical)
    rows = []
    for variant, samples in figures.items():
        server, request = variant.split(" ")
        rows.append(
            [
                f"{SERVERS[server]}: {request}",
                f"{median(map(_rate, samples)):,.0f}",
                f"{_ms(samples, 'p50_us'):.2f}",
                f"{_ms(samples, 'p99_us'):.2f}",
                f"{max(s['max_us'] / 1000 for s in samples):.1f}",
                f"{median(s['cpu_ms_per_request'] * 1000 for s in samples):.0f}",
            ]
        )
    result.tables.append(
        Table(
            f"Each variant (answers of {sizes['inspect']:,} bytes for an inspect, {sizes['list']:,} for the "
            "list): medians over rounds (max: over all of them); the server process's CPU per request",
            ["variant", "requests/s", "p50 ms", "p99 ms", "max ms", "server CPU µs per request"],
            rows,
        )
    )
    cpu = {
        variant: median(s["cpu_ms_per_request"] * 1000 for s in samples)
        for variant, samples in figures.items()
    }
    result.tables.append(
        Table(
            "Where a request's CPU goes (µs): the servers' CPU per request from the table above, and the "
            "handler's steps timed in this process on the same store (item 5's `handler_parts`)",
            ["part", "inspect", "list"],
            [
                [
                    "the floor: aiohttp itself, the same bytes",
                    *[f"{cpu[f'floor {r}']:.0f}" for r in REQUESTS],
                ],
                [
                    "sockerless without access lines",
                    *[f"{cpu[f'quiet {r}']:.0f}" for r in REQUESTS],
                ],
                [
                    "the access line (sockerless, less the same without access lines)",
                    *[f"{cpu[f'sockerless {r}'] - cpu[f'quiet {r}']:.0f}" for r in REQUESTS],
                ],
                *[
                    [
                        f"handler step: {STEP_TITLES[step]} (timed with the garbage collector paused)",
                        *[f"{parts[f'{r}, collector paused'][step] * 1000:.0f}" for r in REQUESTS],
                    ]
                    for step in STEPS
                ],
            ],
        )
    )
    if not result.all_met():
        result.notes.append(_limits(cpu, parts))
    result.data["figures"] = figures


def _limits(cpu: dict[str, float], parts: dict[str, dict[str, float]]) -> str:
    """Where the CPU of a request goes, in words, from this run's figures (µs)."""
    steps = {request: parts[f"{request}, collector paused"]["cached"] * 1000 for request in REQUESTS}
    said = []
    for request in REQUESTS:
        ours, quiet, floor = (cpu[f"{server} {request}"] for server in SERVERS)
        said.append(
            f"for {'an inspect' if request == 'inspect' else 'the list'} the floor spends {floor:.0f} µs of "
            f"CPU, sockerless {ours:.0f}: its access line {ours - quiet:.0f} (the same server without "
            f"access lines spends {quiet:.0f}), the answer from the backend's view cache about "
            f"{steps[request]:.0f} (timed in this process with the garbage collector paused), and the "
            "rest the routing, the generic handler, the middlewares and the collections"
        )
    return (
        "What limits it: CPU per request, in one event loop that all 50 connections wait on (the latency "
        "is the queue behind it). Per request, "
        + "; ".join(said)
        + ". The access line is a log record formatted where it is logged and queued for the log "
        "writer thread (`sockerless.observability`), which writes a batch at a time: its cost is the "
        "record, its JSON, and its share of the writes, all in the server's process."
    )
