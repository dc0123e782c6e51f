"""Smoke test of the benchmark code (``bench/``): it imports, runs its smallest variant, and renders.

No timing is asserted: only that figures of the right shape come out, so the bench cannot rot.
"""

from __future__ import annotations

import importlib
import math
import os

import pytest

MODULES = [
    "bench",
    "bench.common",
    "bench.launcher",
    "bench.run",
    "bench.item1_overhead",
    "bench.item2_calls",
    "bench.item3_cloudwatch",
    "bench.item4_concurrency",
    "bench.item5_store",
    "bench.item6_e2e",
]


@pytest.mark.parametrize("name", MODULES)
def test_bench_modules_import(name: str) -> None:
    importlib.import_module(name)


def test_every_item_is_runnable_by_number() -> None:
    from bench.run import ITEMS

    assert set(ITEMS) == {"1", "2", "3", "4", "5", "6", "sim"}


async def test_overhead_item_smallest_variant_produces_figures() -> None:
    from bench import item1_overhead
    from bench.run import render

    leftovers = {name for name in os.listdir("/tmp") if name.startswith("skb-")}
    result = await item1_overhead.run(levels=(1,), rounds={1: 2})

    assert [row.figure for row in result.rows] == [
        "N=1: backend / direct wave time",
        "N=1: in-process backend (no internal-API hop) / direct",
        "N=1: the internal-API hop alone (the same five calls to a backend that does nothing) / direct",
        "N=1: the floor's AWS calls behind the internal API and nothing else (no store, records or log "
        "lines of its own) / direct",
        "N=1: the same calls plus only the store writes durability needs (record, run, exit, removal; "
        "sockerless's store) / direct",
        "N=1: the same calls and writes with a bare sqlite3 connection (one table; a status column "
        "changed after the first write) / direct",
        "N=1: backend / durable-calls backend, in the same rounds",
    ]
    assert result.rows[0].met in (True, False)
    assert len(result.data["ratios_1"]) == 2
    assert all(ratio > 0 and math.isfinite(ratio) for ratio in result.data["ratios_1"])
    assert [len(table.rows) for table in result.tables] == [7, 7, 1]
    calls = result.tables[2].rows[0][1]
    for operation in ("lambda:CreateFunction 1.00", "lambda:Invoke 1.00", "lambda:DeleteFunction 1.00"):
        assert operation in calls

    # The limits note is built from the run's own figures, the durable floor included, and says
    # whether that floor itself is over the target.
    assert math.isfinite(result.data["durable_calls_ratio_1"])
    assert math.isfinite(result.data["over_durable_1"])
    assert math.isfinite(result.data["bare_sqlite_ratio_1"])

    def limits(durable: float, bare: float) -> str:
        data = {**result.data, "durable_calls_ratio_1": durable, "bare_sqlite_ratio_1": bare}
        return item1_overhead._limits({**data, "over_durable_1": 0.987}, (1,))

    under = limits(1.2, 1.19)
    assert "the floor of a backend that keeps those writes" in under
    assert "over the target in this run" not in under
    assert "Ours takes 0.987 times as long as the durable-calls backend" in under
    assert "both over the target in this run: no backend that keeps those writes in SQLite" in limits(
        1.3, 1.28
    )
    assert "The durable-calls backend is over the target in this run and the bare-SQLite" in limits(1.3, 1.24)

    report = render([result], argv=["--only", "1"], quick=True, seconds=1.0)
    assert "## 1. Overhead over the floor" in report
    assert "| N=1: backend / direct wave time |" in report
    # Everything the item started is gone: its temporary directory too.
    assert {name for name in os.listdir("/tmp") if name.startswith("skb-")} == leftovers


def test_round_order_balances_positions() -> None:
    from bench.item1_overhead import _order

    assert [_order(["A", "B"], turn) for turn in range(4)] == [["A", "B"], ["B", "A"], ["B", "A"], ["A", "B"]]
    variants = list("ABCDEF")
    orders = [_order(variants, turn) for turn in range(2 * len(variants))]
    for variant in variants:  # first and last equally often, and before each other variant half the time
        assert sum(order[0] == variant for order in orders) == 2
        assert sum(order[-1] == variant for order in orders) == 2
        for other in variants:
            if other != variant:
                before = sum(order.index(variant) < order.index(other) for order in orders)
                assert before == len(orders) // 2
