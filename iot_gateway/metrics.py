"""Counters, gauges and latency histograms, rendered in the Prometheus text format."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable

PREFIX = "iot_gateway_"
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """Cumulative-bucket histogram of seconds."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.total += seconds
        self.n += 1


class Metrics:
    """The gateway's numbers; gauges are read from callbacks when rendered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.histograms: dict[str, Histogram] = {}
        self.gauges: dict[str, Callable[[], float]] = {}
        self.help: dict[str, str] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + amount

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            self.histograms.setdefault(name, Histogram()).observe(seconds)

    def observe_many(self, name: str, values: list[float]) -> None:
        """Several observations under one lock (a group of messages at a time)."""
        with self._lock:
            histogram = self.histograms.setdefault(name, Histogram())
            for seconds in values:
                histogram.observe(seconds)

    def gauge(self, name: str, read: Callable[[], float], help_text: str) -> None:
        self.gauges[name] = read
        self.help[name] = help_text

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 when never incremented)."""
        with self._lock:
            return self.counters.get((name, tuple(sorted(labels.items()))), 0)

    def total(self, name: str) -> float:
        """A counter summed over all its labels."""
        with self._lock:
            return sum(v for (n, _), v in self.counters.items() if n == name)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = {}
            for (n, labels), v in self.counters.items():
                if n == name:
                    key = dict(labels).get(label, "")
                    out[key] = out.get(key, 0) + v
            return out

    def snapshot(
        self,
    ) -> tuple[
        dict[tuple[str, tuple[tuple[str, str], ...]], float],
        dict[str, tuple[str, float]],
        dict[str, tuple[list[int], float]],
    ]:
        """Counters, gauges (read now; NaN when their source fails) and histograms, for export."""
        with self._lock:
            counters = dict(self.counters)
            histograms = {k: (list(h.counts), h.total) for k, h in self.histograms.items()}
        gauges = {}
        for name, read in self.gauges.items():
            try:
                value = float(read())
            except Exception:  # a gauge whose source is down is NaN, not a failed scrape
                value = float("nan")
            gauges[name] = (self.help[name], value)
        return counters, gauges, histograms

    def render(self) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            counters = sorted(self.counters.items())
            histograms = {k: (list(h.counts), h.total, h.n) for k, h in self.histograms.items()}
        seen: set[str] = set()
        for (name, labels), value in counters:
            if name not in seen:
                seen.add(name)
                lines.append(f"# TYPE {PREFIX}{name} counter")
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(
                f"{PREFIX}{name}{{{label_text}}} {value:g}"
                if labels
                else f"{PREFIX}{name} {value:g}"
            )
        for name, read in sorted(self.gauges.items()):
            try:
                value = float(read())
            except Exception:  # a gauge whose source is down renders as NaN, not a 500
                value = float("nan")
            lines.append(f"# HELP {PREFIX}{name} {self.help[name]}")
            lines.append(f"# TYPE {PREFIX}{name} gauge")
            lines.append(f"{PREFIX}{name} {value:g}")
        for name, (counts, total, n) in sorted(histograms.items()):
            lines.append(f"# TYPE {PREFIX}{name} histogram")
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'{PREFIX}{name}_bucket{{le="{le}"}} {cumulative}')
            lines.append(f"{PREFIX}{name}_sum {total:g}")
            lines.append(f"{PREFIX}{name}_count {n}")
        return "\n".join(lines) + "\n"
