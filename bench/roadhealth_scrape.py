"""Road health's row gauges on /metrics: ms per scrape as the windows grow, counted vs scanned.

A Prometheus scrape of a road-health process reads its three row gauges (windows ingested,
potholes, alerts). The old collector ran `SELECT count(*)` on each table, a full scan; the
counts the database keeps now (chain.row_counts) are read instead. Both are timed at 10,000 and
200,000 windows. Storing 10,000 windows before and after the counting triggers are installed
gives what the triggers add to each insert, and starting to count (the one count(*) at the
first start on a database made before) is timed once. The database is a SQLite file, or a
fresh schema of the PostgreSQL that SMARTCITY_DATABASE_URL names.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, text

from bench._databases import bench_database, ms_per_call
from bench.roadhealth_recent_windows import BUDGET_S, MIN_CALLS, store
from chain import row_counts
from chain.observability import TableCountCollector, new_registry, render
from services.common.db import Base, make_session_factory
from services.roadhealth import models  # noqa: F401  (registers the tables on Base.metadata)
from smartcity.ops import SERVICE_GAUGES

Result = dict[str, Any]
GAUGES = SERVICE_GAUGES["roadhealth"]
UNCOUNTED, HISTORY = 10_000, (20_000, 200_000)


def scanned(engine: Engine) -> None:
    """What a scrape cost before: a count(*) of each gauge's table."""
    with engine.connect() as conn:
        for table, _ in GAUGES.values():
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def run() -> list[Result]:
    out: list[Result] = []
    with bench_database("roadhealth.db") as (url, backend):
        engine, factory = make_session_factory(url, Base.metadata)
        started = time.perf_counter()
        store(factory, "main", 0, UNCOUNTED)
        plain_us = 1e6 * (time.perf_counter() - started) / UNCOUNTED
        started = time.perf_counter()
        collector = TableCountCollector(engine, GAUGES)
        out.append(_row(backend, "row_counts_start_ms", 1000 * (time.perf_counter() - started)))
        registry = new_registry("bench")
        registry.register(collector)
        stored = UNCOUNTED
        for n, history in enumerate(HISTORY):
            started = time.perf_counter()
            store(factory, "main", stored, history)
            if n == 0:
                counted_us = 1e6 * (time.perf_counter() - started) / (history - stored)
                out.append(_insert_row(backend, plain_us, counted_us))
            stored = history
            counts = row_counts.read_counts(engine, [GAUGES[g][0] for g in GAUGES])
            assert counts["roadhealth_windows"] == stored
            assert "smartcity_roadhealth_windows_ingested" in render(registry).decode()
            ms = ms_per_call(
                lambda: list(collector.collect()), min_calls=MIN_CALLS, budget_s=BUDGET_S
            )
            out.append(_row(backend, "scrape_counted_ms", ms, windows=stored))
            ms = ms_per_call(lambda: scanned(engine), min_calls=MIN_CALLS, budget_s=BUDGET_S)
            out.append(_row(backend, "scrape_scanned_ms", ms, windows=stored))
        engine.dispose()
    return out


def _row(backend: str, name: str, ms: float, **more: Any) -> Result:
    return {"bench": name, "value": round(ms, 3), "unit": "ms", "database": backend, **more}


def _insert_row(backend: str, plain_us: float, counted_us: float) -> Result:
    return {
        "bench": "window_insert_us",
        "value": round(counted_us, 2),
        "unit": "us/window",
        "database": backend,
        "without_counting_us": round(plain_us, 2),
        "note": "executemany of 10,000 windows a transaction, the counting triggers installed",
    }
