"""Counters and one histogram, rendered in the Prometheus text format (no client library)."""

from __future__ import annotations

import bisect
from collections import defaultdict

OVERHEAD_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 100.0)


class Metrics:
    """Labelled counters and the added-latency histogram of one gateway process."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.buckets = [0] * (len(OVERHEAD_BUCKETS_MS) + 1)
        self.overhead_sum = 0.0
        self.overhead_count = 0

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += value

    def observe_overhead(self, ms: float) -> None:
        self.buckets[bisect.bisect_left(OVERHEAD_BUCKETS_MS, ms)] += 1
        self.overhead_sum += ms
        self.overhead_count += 1

    def get(self, name: str, **labels: str) -> float:
        return self.counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self, gauges: dict[str, float]) -> str:
        """The exposition text; ``gauges`` are point-in-time values added by the caller."""
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in sorted(self.counters.items()):
            if name not in seen:
                lines.append(f"# TYPE {name} counter")
                seen.add(name)
            lines.append(f"{name}{_labels(labels)} {value:g}")
        for name, value in sorted(gauges.items()):
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {value:g}")
        hist = "dw_added_latency_ms"
        lines.append(f"# TYPE {hist} histogram")
        total = 0
        for bound, count in zip(OVERHEAD_BUCKETS_MS, self.buckets, strict=False):
            total += count
            lines.append(f'{hist}_bucket{{le="{bound:g}"}} {total}')
        lines.append(f'{hist}_bucket{{le="+Inf"}} {self.overhead_count}')
        lines.append(f"{hist}_sum {self.overhead_sum:.3f}")
        lines.append(f"{hist}_count {self.overhead_count}")
        return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"
