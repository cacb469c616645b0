"""Operations wiring for each kind of process: settings, logging, metrics, health, readiness.

`start_process` validates the configuration and sets up logging before a process opens
anything; `instrument_service` and `instrument_suite` give a standalone service and the
one-process suite their `/metrics`, `/healthz` and `/readyz` (see chain.observability for
nodes, docs/operations.md for what each check and metric means).
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from chain.db import make_engine
from chain.errors import ChainError
from chain.observability import (
    Check,
    NodeCollector,
    NotReady,
    TableCountCollector,
    database_check,
    instrument,
    new_registry,
    node_checks,
    run_checks,
)
from services.common.context import ServiceContext
from smartcity.logs import configure_logging
from smartcity.settings import Settings, apply_to_environ, load_settings

if TYPE_CHECKING:
    from iot_gateway.gateway import Gateway
    from smartcity.composition import Suite

# Rows of a service's own tables worth watching, exposed as gauges: name -> (table, help)
SERVICE_GAUGES: dict[str, dict[str, tuple[str, str]]] = {
    "identity": {
        "smartcity_identity_credentials_issued": (
            "identity_credentials",
            "Credentials issued through this service.",
        ),
    },
    "credit": {
        "smartcity_credit_smes": ("credit_smes", "SMEs registered."),
        "smartcity_credit_ratings": (
            "credit_ratings",
            "Ratings computed and written to the chain.",
        ),
        "smartcity_credit_inquiries": ("credit_inquiries", "Audited rating reads by banks."),
    },
    "roadhealth": {
        "smartcity_roadhealth_windows_ingested": (
            "roadhealth_windows",
            "Telemetry windows ingested.",
        ),
        "smartcity_roadhealth_potholes": ("roadhealth_potholes", "Potholes detected."),
        "smartcity_roadhealth_alerts": ("roadhealth_alerts", "Alerts raised."),
    },
}


def start_process(
    data_dir: Path | None,
    *,
    config: Path | None = None,
    demo: bool | None = None,
    access_log: bool = True,
) -> Settings:
    """Validate settings (ConfigError on a bad one), export them, and configure logging."""
    settings = load_settings(data_dir, config=config, demo=demo)
    apply_to_environ(settings)
    configure_logging(settings.log_format, settings.log_level, access_log=access_log)
    return settings


# Young-generation threshold (CPython's default is 700 allocations)
GC_YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Move what start-up built (models, registries, caches, the recovered ledger) out of the
    collector's sight, and collect less often from then on.

    A long-running server keeps its start-up objects for life; without this, every full
    collection walks them all again (a 250 ms pause in a suite holding a credit model and
    thousands of rows), which shows up as the tail of request latency. A node's heap also
    keeps growing after start-up (state values and sparse Merkle tree nodes, a few per
    transaction), and with the default thresholds the collector re-scans it ever more often:
    executing a block of anchors on one ledger cost 72 us per transaction at 15,000
    transactions and 162 us at 60,000, 86 us with these thresholds and 79 us with no collector
    at all (docs/benchmarks.md). Cycles are still collected, less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)


def service_checks(ctx: ServiceContext) -> tuple[dict[str, Check], TableCountCollector]:
    """A service is ready when its database answers and it can reach its ledger."""
    engine = make_engine(ctx.database_url)

    def ledger() -> None:
        try:
            ctx.ledger.height()
        except ChainError as exc:
            raise NotReady(f"cannot reach the ledger: {exc}") from exc

    checks: dict[str, Check] = {"database": database_check(engine), "ledger": ledger}
    return checks, TableCountCollector(engine, SERVICE_GAUGES.get(ctx.name, {}))


def instrument_service(app: FastAPI, ctx: ServiceContext) -> CollectorRegistry:
    """`smartcity service NAME`: the service's own metrics, health and readiness."""
    checks, counts = service_checks(ctx)
    return instrument(app, process=f"service-{ctx.name}", checks=checks, collectors=[counts])


def instrument_suite(suite: Suite, contexts: Mapping[str, ServiceContext]) -> CollectorRegistry:
    """The one-process suite: one /metrics for the process, nodes told apart by a `node` label."""
    registry = new_registry("suite")
    checks: dict[str, Check] = {}
    for name, node in suite.cluster.nodes.items():
        checks[f"node:{name}"] = _all_of(node_checks(node))
    collectors: list[Collector] = [NodeCollector(lambda: suite.cluster.nodes)]
    for name, ctx in contexts.items():
        service, counts = service_checks(ctx)
        checks[f"service:{name}"] = _all_of(service)
        collectors.append(counts)
    return instrument(
        suite.app, process="suite", checks=checks, registry=registry, collectors=collectors
    )


def _all_of(checks: Mapping[str, Check]) -> Check:
    """One check that fails with the first failing sub-check's name and reason."""

    def check() -> None:
        for name, result in run_checks(checks).items():
            if not result["ok"]:
                raise NotReady(f"{name}: {result['reason']}")

    return check


def attach_gateway(app: FastAPI, gateway: Gateway) -> None:
    """The suite's in-process gateway joins the process's /metrics and /readyz."""
    from iot_gateway.health import readiness_checks
    from iot_gateway.prometheus import GatewayCollector

    app.state.metrics_registry.register(GatewayCollector(gateway.metrics))
    checks = readiness_checks(gateway)
    app.state.readiness_checks["gateway"] = _all_of(checks)
