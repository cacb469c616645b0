"""A service's row gauges on /metrics: exactly the rows its tables hold, however many processes
wrote them, and read from the counts the database keeps (chain.row_counts), never by scanning
the table on a scrape."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError

from chain import row_counts
from chain.db import make_engine
from chain.observability import TableCountCollector, new_registry, render
from iot_gateway.simulator import PassFleet, ingest_body
from services.roadhealth.app import create_app
from smartcity.ops import SERVICE_GAUGES, instrument_service
from smartcity.roadhealth_harness import Harness, running

from .test_observability import samples

T0 = 1_770_000_000.0
GAUGES = SERVICE_GAUGES["roadhealth"]


def gauges(text_: str) -> dict[str, float]:
    return {name: value for (name, labels), value in samples(text_).items() if name in GAUGES}


def table_rows(url: str) -> dict[str, int]:
    """What the tables hold, counted the slow way."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for name, (table, _) in GAUGES.items()
            }
    finally:
        engine.dispose()


def passes(h: Harness) -> list[dict[str, Any]]:
    """Three vehicles drive every demo segment once, some segments with a pothole."""
    vehicles = [h.register(f"veh-{i}", ("car", "van", "bus")[i], 31 + i) for i in range(3)]
    fleet = PassFleet(h.runtime.index)
    segments = sorted(h.runtime.index.lengths_m)
    for j, segment in enumerate(segments):
        fleet.plan(segment, base_iri=2.0, seed=j, potholes=1 if j % 2 == 0 else 0, bumps=0)
    payloads = []
    for i, vehicle in enumerate(vehicles):
        for j, segment in enumerate(segments):
            payloads += fleet.drive(
                vehicle, segment, speed_mps=9.0 + 2 * i, t0=T0 + i * 3000 + j * 100, seed=j + i
            )
    return payloads


@pytest.fixture
def replicas(tmp_path: Path, db_url: str) -> Iterator[tuple[Harness, TestClient]]:
    """The suite's road-health service and a second one on its database (a replica)."""
    with running(tmp_path, db_url) as h:
        ctx = h.runtime.ctx
        replica = create_app(ctx)
        instrument_service(replica, ctx)
        with TestClient(replica) as client:  # leaving it stops both apps' dispatchers
            yield h, client


def test_the_gauges_are_the_rows_two_replicas_stored(
    replicas: tuple[Harness, TestClient],
) -> None:
    h, replica = replicas
    before = gauges(h.client.get("/metrics").text)
    assert before["smartcity_roadhealth_windows_ingested"] == 0
    payloads = passes(h)
    size = len(payloads) // 6
    batches = [payloads[i : i + size] for i in range(0, len(payloads), size)]
    key = h.key("bsn-operator")
    bodies = [ingest_body(h.ledger, key, batch) for batch in batches]
    # Each replica stores every other batch, both at once; the first batch goes to both
    # (one stores it, the other finds its readings stored: a refused insert counts nothing)
    posts = {
        "suite": [(h.client, "/roadhealth/v1/ingest", b) for b in bodies[0::2]],
        "replica": [(replica, "/v1/ingest", b) for b in [bodies[0], *bodies[1::2]]],
    }
    answers: list[int] = []

    def post_all(name: str) -> None:
        for client, path, body in posts[name]:
            answers.append(client.post(path, json=body, headers=h.auth("bsn-operator")).status_code)

    threads = [threading.Thread(target=post_all, args=(name,)) for name in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert answers == [200] * (len(bodies) + 1)

    stored = table_rows(h.runtime.ctx.database_url)
    assert stored["smartcity_roadhealth_windows_ingested"] == len(payloads)
    assert stored["smartcity_roadhealth_potholes"] > 0  # the potholes gauge is exercised too
    # What an operator scrapes from either process is what the tables hold
    assert gauges(h.client.get("/metrics").text) == stored
    assert gauges(replica.get("/metrics").text) == stored


def statements_of(engine: Engine) -> list[str]:
    issued: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        issued.append(statement)

    return issued


def test_a_scrape_reads_the_counts_not_the_tables(tmp_path: Path, db_url: str) -> None:
    """Rows already there when counting starts are counted once; later inserts and deletes by
    other connections (other processes) follow; a scrape never reads the counted table."""
    writer = make_engine(db_url)
    with writer.begin() as conn:
        conn.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY, v INTEGER UNIQUE)"))
        conn.execute(text("INSERT INTO things (id, v) VALUES (1, 1), (2, 2), (3, 3)"))
    engine = make_engine(db_url)
    registry = new_registry("test")
    gauge = {"smartcity_test_things": ("things", "Things.")}
    registry.register(TableCountCollector(engine, gauge))
    other = TableCountCollector(make_engine(db_url), gauge)  # a second process's collector
    assert other.counted == {"things"}

    def scraped() -> float:
        return samples(render(registry).decode())[("smartcity_test_things", frozenset())]

    assert scraped() == 3
    with writer.begin() as conn:
        conn.execute(text("INSERT INTO things (id, v) VALUES (4, 4), (5, 5), (6, 6)"))
        conn.execute(text("DELETE FROM things WHERE v = 1"))
    with pytest.raises(IntegrityError), writer.begin() as conn:
        conn.execute(text("INSERT INTO things (id, v) VALUES (7, 7)"))
        conn.execute(text("INSERT INTO things (id, v) VALUES (8, 2)"))  # a duplicate: all undone
    issued = statements_of(engine)
    assert scraped() == 5
    assert issued and not [s for s in issued if "things" in s]
    assert {s for s in issued if "count(" in s.lower()} == set()
    with writer.begin() as conn:
        conn.execute(text("DELETE FROM things"))
    assert scraped() == 0
    writer.dispose()
    engine.dispose()


def test_a_table_made_after_the_service_started_is_counted_from_then(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'late.db'}")
    collector = TableCountCollector(engine, {"smartcity_test_late": ("late", "Late rows.")})
    registry = new_registry("test")
    registry.register(collector)
    assert "smartcity_test_late" not in render(registry).decode()  # no table: no gauge
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE late (id INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO late (id) VALUES (1), (2)"))
    assert samples(render(registry).decode())[("smartcity_test_late", frozenset())] == 2
    engine.dispose()


def test_the_bookkeeping_stays_small_where_nothing_scrapes(db_url: str) -> None:
    """A service nobody scrapes still stores rows: its counts must not grow a second table
    beside them. On PostgreSQL each counted statement appends a delta, and every FOLD_EVERY-th
    folds them; SQLite keeps the counts alone. The count stays exact either way."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY)"))
    TableCountCollector(engine, {"smartcity_test_things": ("things", "Things.")})
    statements = 3 * row_counts.FOLD_EVERY + 7
    with engine.begin() as conn:
        for i in range(statements):  # one statement a row, as an ingest stores its windows
            conn.execute(text("INSERT INTO things (id) VALUES (:i)"), {"i": i})
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        kept = (
            conn.execute(text(f"SELECT count(*) FROM {row_counts.DELTAS}")).scalar_one()
            if row_counts.DELTAS in tables
            else 0
        )
    assert kept <= row_counts.FOLD_EVERY
    assert (row_counts.DELTAS in tables) == (engine.dialect.name == "postgresql")
    assert row_counts.read_counts(engine, ["things"]) == {"things": statements}
    engine.dispose()
