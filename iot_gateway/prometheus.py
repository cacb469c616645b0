"""The gateway's numbers in the Prometheus format, through prometheus_client.

The gateway keeps its own counters, gauges and histograms (iot_gateway.metrics, used by the
health report and tests); `GatewayCollector` reads them at scrape time and hands them to a
prometheus_client registry, so nothing is counted twice and the names stay `iot_gateway_*`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from chain.observability import new_registry
from iot_gateway.metrics import LATENCY_BUCKETS_S, PREFIX, Metrics


class Observed(Protocol):
    """What a gateway registry reads of a running gateway (iot_gateway.gateway.Gateway)."""

    @property
    def metrics(self) -> Metrics: ...


class GatewayCollector(Collector):
    """Counters (with their labels), gauges read from callbacks, and latency histograms."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counters, gauges, histograms = self.metrics.snapshot()
        families: dict[str, CounterMetricFamily] = {}
        for (name, labels), value in sorted(counters.items()):
            family = families.get(name)
            if family is None:
                family = CounterMetricFamily(
                    PREFIX + name, self.metrics.help.get(name, name), labels=[k for k, _ in labels]
                )
                families[name] = family
            family.add_metric([v for _, v in labels], value)
        yield from families.values()
        for name, (help_text, value) in sorted(gauges.items()):
            gauge = GaugeMetricFamily(PREFIX + name, help_text)
            gauge.add_metric([], value)
            yield gauge
        for name, (counts, total) in sorted(histograms.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS_S, math.inf), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
            histogram = HistogramMetricFamily(PREFIX + name, name.replace("_", " "))
            histogram.add_metric([], buckets, total)
            yield histogram


def gateway_registry(gateway: Observed) -> CollectorRegistry:
    """A registry of the gateway's own: build info, process and the gateway's metrics."""
    registry = new_registry("gateway")
    registry.register(GatewayCollector(gateway.metrics))
    return registry
