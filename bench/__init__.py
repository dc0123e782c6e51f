"""Benchmarks of sockerless on the local Lambda simulator: ``python -m bench`` (``./dev bench``).

Each item (``bench.item1_overhead`` ... ``bench.item6_e2e``) starts what it measures as separate
processes (the simulator, the product's own ``sockerless`` command or the bench-only launcher),
measures, stops them and returns a :class:`bench.common.ItemResult`; ``bench.run`` renders the
results into ``docs/benchmarks.md``. Timings are ratios of variants measured side by side,
interleaved over several rounds (medians); counts come from the simulator's per-operation stats.
"""
