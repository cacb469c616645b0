"""A segment's newest windows, read on every ingest with its segment held: ms per recent_rows call.

Ingest re-estimates each segment a batch touched from its newest `recent_windows` (60) windows
(conditions.recent_rows), while it holds the segments' locks. Windows are never deleted, so the
figure that matters is how the call's cost grows with what a segment has stored: one segment is
grown to 5,000, 50,000 and 200,000 windows (four vehicles, two windows every half second so the
hash breaks ties, one in twenty without an IRI) and timed at each;
then 100 other segments of 600 windows each are asked for in one call, as a batch touching many
segments asks. Last, the index is dropped and built again over all the windows stored, as the
first start after the upgrade builds it (services.common.db.prepare_schema). The database is a
SQLite file, or a fresh schema of the PostgreSQL that SMARTCITY_DATABASE_URL names.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bench._databases import bench_database, ms_per_call, stored_window
from services.common.db import Base, make_session_factory, prepare_schema
from services.roadhealth import models  # noqa: F401  (registers the tables on Base.metadata)
from services.roadhealth.models import WINDOWS_NEWEST, RhWindow
from services.roadhealth.service.conditions import recent_rows

Result = dict[str, Any]
T0 = 1_770_000_000.0
LIMIT = 60  # Settings.recent_windows
HISTORY = (5_000, 50_000, 200_000)
SIDE_SEGMENTS, SIDE_WINDOWS = 100, 600
MIN_CALLS, BUDGET_S = 5, 2.0
INSERT_CHUNK = 10_000


def window_rows(segment: str, start: int, stop: int) -> Iterator[dict[str, Any]]:
    """Windows `start` to `stop` of a segment's history, oldest first."""
    for i in range(start, stop):
        digest = hashlib.sha256(f"{segment}/{i}".encode()).hexdigest()
        yield stored_window(
            i,
            device=f"{segment}-veh-{i % 4}",
            hash=digest,
            topic=f"city/bench/road/{segment}/sensor/{segment}-veh-{i % 4}/telemetry",
            t0=T0 + 0.5 * (i // 2),  # pairs at one time: the hash breaks the tie
            leaf_index=i % 1000,
            segment=segment,
            iri=None if i % 20 == 19 else 1.0 + (i % 7) / 10,
            iri_log_std=0.1,
        )


def store(factory: sessionmaker[Session], segment: str, start: int, stop: int) -> None:
    for lo in range(start, stop, INSERT_CHUNK):
        with factory() as session, session.begin():
            rows = list(window_rows(segment, lo, min(stop, lo + INSERT_CHUNK)))
            session.execute(insert(RhWindow), rows)


def timed(factory: sessionmaker[Session], ids: list[str]) -> tuple[float, int]:
    with factory() as session, session.begin():
        rows = recent_rows(session=session, ids=ids, limit=LIMIT)
        assert sorted(rows) == sorted(ids)
        assert all(len(r) == LIMIT for r in rows.values())
        ms = ms_per_call(
            lambda: recent_rows(session=session, ids=ids, limit=LIMIT),
            min_calls=MIN_CALLS,
            budget_s=BUDGET_S,
        )
    return ms, sum(len(r) for r in rows.values())


def run() -> list[Result]:
    out: list[Result] = []
    with bench_database("roadhealth.db") as (url, backend):
        engine, factory = make_session_factory(url, Base.metadata)
        stored = 0
        for history in HISTORY:
            store(factory, "main", stored, history)
            stored = history
            ms, rows = timed(factory, ["main"])
            out.append(_row(backend, "recent_rows_one_segment_ms", ms, 1, history, rows))
        sides = [f"side-{n:03d}" for n in range(SIDE_SEGMENTS)]
        for segment in sides:
            store(factory, segment, 0, SIDE_WINDOWS)
        ms, rows = timed(factory, sides)
        out.append(
            _row(backend, "recent_rows_many_segments_ms", ms, len(sides), SIDE_WINDOWS, rows)
        )
        WINDOWS_NEWEST.drop(engine)
        started = time.perf_counter()
        prepare_schema(engine, Base.metadata)
        out.append(
            {
                "bench": "windows_index_build_ms",
                "value": round(1000 * (time.perf_counter() - started), 1),
                "unit": "ms",
                "database": backend,
                "windows": stored + SIDE_SEGMENTS * SIDE_WINDOWS,
                "note": "once, at the first start on a database made before the index",
            }
        )
        engine.dispose()
    return out


def _row(backend: str, name: str, ms: float, segments: int, history: int, rows: int) -> Result:
    return {
        "bench": name,
        "value": round(ms, 3),
        "unit": "ms/call",
        "database": backend,
        "segments_per_call": segments,
        "windows_per_segment": history,
        "rows_returned": rows,
        "limit": LIMIT,
    }
