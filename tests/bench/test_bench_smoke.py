"""Smoke test of the benchmark code (``bench/``): it imports, runs its smallest variant, and renders.

No timing is asserted: only that figures of the right shape come out, so the bench cannot rot.
"""

from __future__ import annotations

import importlib
import math
import os
import pkgutil
from typing import Any

import pytest

import bench

#: Every module but ``__main__`` (importing it runs the bench).
MODULES = [
    "bench",
    *(f"bench.{m.name}" for m in pkgutil.iter_modules(bench.__path__) if m.name != "__main__"),
]


@pytest.mark.parametrize("name", MODULES)
def test_bench_modules_import(name: str) -> None:
    importlib.import_module(name)


def test_every_item_is_runnable_by_number() -> None:
    from bench.run import ITEMS

    assert set(ITEMS) == {"1", "2", "3", "4", "5", "6", "7", "8", "9", "sim"}


async def test_overhead_item_smallest_variant_produces_figures() -> None:
    from bench import item1_overhead
    from bench.run import render

    leftovers = {name for name in os.listdir("/tmp") if name.startswith("skb-")}
    result = await item1_overhead.run(levels=(1,), rounds={1: 2})

    assert [row.figure for row in result.rows] == [
        "N=1: backend / direct wave time",
        "N=1: in-process backend (no internal-API hop) / direct",
        "N=1: the internal-API hop alone (the same five calls to a backend that does nothing) / direct",
        "N=1: the same AWS calls behind the internal API, nothing else (no store, records or log lines of "
        "its own) / direct",
        "N=1: backend until its functions are deleted too / direct (the remove answers first; "
        "DeleteFunction follows in the background)",
        "N=1: backend / calls-only backend, in the same rounds",
    ]
    # The wave's functions are deleted before the next variant runs: every lifecycle's call counted.
    assert result.data["settled_ratio_1"] > 0
    assert result.rows[0].met in (True, False)
    assert len(result.data["ratios_1"]) == 2
    assert all(ratio > 0 and math.isfinite(ratio) for ratio in result.data["ratios_1"])
    assert [len(table.rows) for table in result.tables] == [5, 5, 1]
    calls = result.tables[2].rows[0][1]
    for operation in ("lambda:CreateFunction 1.00", "lambda:Invoke 1.00", "lambda:DeleteFunction 1.00"):
        assert operation in calls

    # The note on where the time goes is built from the run's own figures.
    note = item1_overhead.limits_note(result.data, (1,))
    assert "Where the time goes at N=1" in note
    assert "nan" not in note

    report = render([result], argv=["--only", "1"], quick=True, seconds=1.0)
    assert "## 1. Overhead over the floor" in report
    assert "| N=1: backend / direct wave time |" in report
    # Everything the item started is gone: its temporary directory too.
    assert {name for name in os.listdir("/tmp") if name.startswith("skb-")} == leftovers


async def test_live_output_item_smallest_variant_produces_figures() -> None:
    from bench import item8_live_output
    from bench.docker_cli import DockerCLI
    from bench.run import render

    if not DockerCLI.installed():
        pytest.skip("the docker CLI is not installed")
    result = await item8_live_output.run(lines=5, gap=0.01, rounds=1)

    assert [row.figure for row in result.rows] == [
        "`docker run --rm` (attached): line latency p50",
        "`docker run --rm` (attached): every line, in order",
        "`docker run --rm` (attached): the client's exit after the command's end",
        "`docker logs -f` (of `docker run -d`): line latency p50",
        "`docker logs -f` (of `docker run -d`): every line, in order",
        "`docker logs -f` (of `docker run -d`): the client's exit after the command's end",
        "`echo hi` lifecycle through the internal API, over a bare InvokeWithResponseStream of a warm "
        "function",
        "`echo hi` lifecycle through the internal API, over bare CreateFunction + InvokeWithResponseStream + "
        "DeleteFunction",
        "AWS calls of one backend lifecycle (the simulator's counters)",
    ]
    assert result.data["attached_complete"] and result.data["follower_complete"]
    assert result.data["attached_count"] == 5
    assert all(
        math.isfinite(result.data[key])
        for key in ("attached_p50_ms", "attached_exit_ms", "added_ms_bare_warm")
    )
    # The backend ran the container through the bootstrap: one streaming invocation, no plain Invoke.
    calls = result.data["backend_calls"]
    assert calls.get("lambda:InvokeWithResponseStream") == 1
    assert "lambda:Invoke" not in calls
    assert "## 8. Live output through the bootstrap" in render(
        [result], argv=["--only", "8"], quick=True, seconds=1
    )


async def test_images_item_smallest_variant_produces_figures() -> None:
    """Item 9 runs on a version with one function per container and on one with a function per image
    configuration: its figures say which (one CreateFunction per run, or one for the burst)."""
    from bench import item9_images
    from bench.docker_cli import DockerCLI
    from bench.run import render

    if not DockerCLI.installed():
        pytest.skip("the docker CLI is not installed")
    result = await item9_images.run(
        count=2, rounds={1: 1, 2: 1}, cli_rounds=1, pending=0.5, random_bytes=64 * 1024
    )

    assert not [note for note in result.notes if "failed" in note], result.notes
    figures = [row.figure for row in result.rows]
    assert figures[:4] == [
        "first burst (new image): 2 concurrent runs, first launch → last exit",
        "first burst (new image): runs that exited 0 with `hi`",
        "second burst: 2 concurrent runs, first launch → last exit",
        "second burst: runs that exited 0 with `hi`",
    ]
    assert result.rows[1].met and result.rows[3].met  # every run exited 0 and printed hi
    assert "N=1: warm `docker run --rm` (Docker API) over a bare InvokeWithResponseStream" in figures
    assert "N=2: warm run / bare invoke, batch wall time" in figures
    # One function per container (before issue 21) or one for the whole burst (after).
    assert result.data["first_create_function"] in (1, 2)
    per_run = result.data["second_calls_per_run"]
    assert per_run == 0 if result.data["first_create_function"] == 1 else per_run >= 2  # create + delete
    assert all(
        math.isfinite(result.data[key]) for key in ("ratio_1", "ratio_2", "added_ms_1", "cli_added_ms_1")
    )
    # The client's steps of a warm run and the server's routes are both in the breakdown.
    breakdown = {row[0]: row[1] for row in result.tables[1].rows}
    assert "start" in breakdown["client (Docker API)"]
    assert "/containers/create" in breakdown["server side (access log)"]
    prepared = "pulls" in result.data
    skipped = [note for note in result.notes if note.startswith("Preparation: skipped")]
    assert prepared != bool(skipped), result.notes
    if prepared:
        (_, first_bytes), (_, repeated_bytes) = result.data["pulls"]
        assert first_bytes > 64 * 1024 and repeated_bytes == 0
    assert "## 9. One warm function per image configuration" in render(
        [result], argv=["--only", "9"], quick=True, seconds=1
    )


def test_control_plane_calls_are_lambda_operations_but_invokes() -> None:
    from bench.item9_runs import control_plane

    calls = {
        "lambda:CreateFunction": 2,
        "lambda:GetFunction": 5,
        "lambda:Invoke": 3,
        "lambda:InvokeWithResponseStream": 4,
        "lambda:DeleteFunction": 0,
        "logs:FilterLogEvents": 7,
    }
    assert control_plane(calls) == {"lambda:CreateFunction": 2, "lambda:GetFunction": 5}


async def test_registry_blobs_names_every_blob_of_every_manifest(source_registry: Any) -> None:
    from bench.item9_prepare import registry_blobs
    from tests.imagekit import busybox_layer, file_layer, image, push_image

    assert await registry_blobs(source_registry.url, {}) == {}
    pushed = image([busybox_layer(), file_layer({"data/x": b"x" * 1000})])
    await push_image(source_registry.url, "bench/one", "latest", pushed)
    await push_image(source_registry.url, "bench/two", "v1", pushed)

    expected = {pushed.config_digest: len(pushed.config)}
    expected.update({layer.digest: layer.size for layer in pushed.layers})
    assert await registry_blobs(source_registry.url, {}) == expected


def test_live_output_item_reads_the_lines_its_job_prints() -> None:
    import subprocess
    import time

    from bench.item8_live_output import job, line_latency

    began = time.time_ns()
    printed = subprocess.run(["sh", "-c", job(3, 0)], check=True, capture_output=True, text=True).stdout
    arrived = time.time_ns()
    arrivals = [(line, arrived) for line in printed.splitlines()]

    attached = line_latency("attached", arrivals, 3, live_after_first=False)
    assert attached.complete
    assert len(attached.latencies_ms) == 3
    assert all(0 <= value <= (arrived - began) / 1e6 for value in attached.latencies_ms)
    # A follower counts only the lines made after its first line arrived: here all came at once.
    follower = line_latency("follower", arrivals, 3, live_after_first=True)
    assert (follower.backlog, follower.latencies_ms, follower.complete) == (3, [], True)
    assert not line_latency("attached", arrivals[1:], 3, live_after_first=False).complete
    assert not line_latency("attached", arrivals[::-1], 3, live_after_first=False).in_order


def test_round_order_balances_positions() -> None:
    from bench.common import round_order

    assert [round_order(["A", "B"], turn) for turn in range(4)] == [
        ["A", "B"],
        ["B", "A"],
        ["B", "A"],
        ["A", "B"],
    ]
    variants = list("ABCDEF")
    orders = [round_order(variants, turn) for turn in range(2 * len(variants))]
    for variant in variants:  # first and last equally often, and before each other variant half the time
        assert sum(order[0] == variant for order in orders) == 2
        assert sum(order[-1] == variant for order in orders) == 2
        for other in variants:
            if other != variant:
                before = sum(order.index(variant) < order.index(other) for order in orders)
                assert before == len(orders) // 2


async def test_interleave_takes_one_sample_per_variant_and_round() -> None:
    from bench.common import interleave

    seen: list[str] = []

    async def measure(name: str) -> int:
        seen.append(name)
        return len(seen)

    samples = await interleave(4, lambda index: "AB" if index % 2 else "ABC", measure)
    assert [sorted(sample) for sample in samples] == [list("ABC"), list("AB"), list("ABC"), list("AB")]
    assert len(seen) == 10


def test_access_routes_name_the_container_whatever_the_reference(tmp_path: object) -> None:
    import json

    from bench.common import access_durations

    log = os.path.join(str(tmp_path), "up.log")
    lines = [
        {
            "logger": "sockerless.access",
            "method": "DELETE",
            "path": "/v1.44/containers/web",
            "duration_ms": 2,
        },
        {
            "logger": "sockerless.access",
            "method": "DELETE",
            "path": "/v1.44/containers/" + "a" * 64,
            "duration_ms": 4,
        },
        {
            "logger": "sockerless.access",
            "method": "POST",
            "path": "/v1.44/containers/create",
            "duration_ms": 1,
        },
        {"logger": "sockerless.lambda", "message": "container exited"},
    ]
    with open(log, "w", encoding="utf-8") as out:
        out.write("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    assert access_durations(log) == {
        "DELETE /v1.44/containers/{id}": [2.0, 4.0],
        "POST /v1.44/containers/create": [1.0],
    }
