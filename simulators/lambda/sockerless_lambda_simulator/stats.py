"""Per-operation call counters: what the benchmarks read to count AWS calls per container."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Calls seen from clients (not the simulator's own calls to moto), faults injected, invocations."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()
        """Calls refused for their group's request rate (quotas, not injected faults)."""
        self.invocations: Counter[str] = Counter()
        self.running = 0
        self.events_pending = 0
        """Event invocations not yet done: running, or waiting to be retried."""

    def count_call(self, operation_key: str) -> None:
        self.calls[operation_key] += 1

    def count_fault(self, operation_key: str) -> None:
        self.faults[operation_key] += 1

    def count_throttle(self, operation_key: str) -> None:
        self.throttles[operation_key] += 1

    def invocation_started(self) -> None:
        self.running += 1
        self.invocations["started"] += 1

    def invocation_finished(self, outcome: str) -> None:
        self.running -= 1
        self.invocations[outcome] += 1

    def event_accepted(self) -> None:
        self.events_pending += 1

    def event_done(self) -> None:
        self.events_pending -= 1

    def count_retry(self) -> None:
        self.invocations["retried"] += 1

    def count_duplicate(self) -> None:
        """An Event invocation delivered a second time (Lambda delivers at least once)."""
        self.invocations["duplicated"] += 1

    def count_dropped_event(self) -> None:
        """An Event invocation dropped for its age (MaximumEventAgeInSeconds)."""
        self.invocations["events_dropped"] += 1

    def reset(self) -> None:
        """Zero the counters; running invocations and pending events stay counted."""
        self.calls.clear()
        self.faults.clear()
        self.throttles.clear()
        self.invocations.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "total_calls": sum(self.calls.values()),
            "faults": dict(sorted(self.faults.items())),
            "throttles": dict(sorted(self.throttles.items())),
            "invocations": {
                **dict(sorted(self.invocations.items())),
                "running": self.running,
                "events_pending": self.events_pending,
            },
        }
