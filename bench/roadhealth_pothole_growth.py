"""A pothole report's ingest on an aged segment: ms per ingest as its history of reports grows.

Every ingest that files a pothole report groups it with what the segment already holds
(services/roadhealth/service/potholes.py) while the segment is held. Reports are never deleted,
so the figure that matters is how that cost grows with a road's age: one 300 m segment is given
1,000, 10,000 and 50,000 historical reports (12 confirmed potholes 25 m apart, 40 vehicles,
positions scattered by the 3 m GPS error) and one ingest's pothole work is timed at each: one
window of a known vehicle filing a report at the first pothole, plus, from the lifecycle on,
the clean passes of the potholes it drives over (each timed ingest is rolled back, so the
history stays what it is). The database is a SQLite file, or a fresh schema of the PostgreSQL
that SMARTCITY_DATABASE_URL names.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from bench._databases import bench_database, ms_per_call, stored_window
from services.common.db import Base, make_session_factory
from services.roadhealth import models  # noqa: F401  (registers the tables on Base.metadata)
from services.roadhealth.assessment.windows import pothole_confidence
from services.roadhealth.models import RhPothole, RhPotholeReport, RhWindow
from services.roadhealth.network.geo import Segment
from services.roadhealth.network.matching import SegmentIndex
from services.roadhealth.runtime import Runtime, Settings
from services.roadhealth.service import potholes, repairs
from services.roadhealth.service.placement import Placed

Result = dict[str, Any]
T0 = 1_770_000_000.0
SEGMENT = "main"
HISTORY = (1_000, 10_000, 50_000)
SITES_M = tuple(12.5 + 25.0 * k for k in range(12))
VEHICLES = 40
SIGMA_M = 3.0
MIN_CALLS, BUDGET_S = 5, 3.0
INSERT_CHUNK = 10_000


class _Chain:
    """A chain that accepts every attestation (the bench times the database work)."""

    def attest_many(self, method: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"status": "ok", "tx": "c" * 64} for _ in batch]

    def anchor(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"status": "ok", "tx": "d" * 64}


def runtime() -> Runtime:
    """What the pothole functions use of a runtime: settings, the segment index, the chain."""
    segment = Segment(SEGMENT, "Main", ((114.05, 22.54), (114.05 + 300 / 102_900, 22.54)), {})
    rt = SimpleNamespace(settings=Settings(), index=SegmentIndex([segment]), chain=_Chain())
    return cast(Runtime, rt)


def _digest(i: int) -> str:
    return hashlib.sha256(f"{SEGMENT}/{i}".encode()).hexdigest()


def history_rows(start: int, stop: int, rng: random.Random) -> Iterator[tuple[dict[str, Any], ...]]:
    """Windows `start` to `stop`, each with its report at one of the sites."""
    for i in range(start, stop):
        site = i % len(SITES_M)
        chainage = SITES_M[site] + rng.gauss(0.0, SIGMA_M)
        window = stored_window(
            i,
            id=i + 1,
            device=f"veh-{i % VEHICLES}",
            hash=_digest(i),
            t0=T0 + 10.0 * i,
            segment=SEGMENT,
            chainage_m=chainage,
            direction=1,
        )
        report = {
            "window_id": i + 1,
            "pothole": f"{SEGMENT}:p{site}",
            "device": window["device"],
            "chainage_m": chainage,
            "peak_mps2": 4.0,
            "message_hash": window["hash"],
            "t0": window["t0"],
        }
        yield window, report


def store(factory: sessionmaker[Session], start: int, stop: int, rng: random.Random) -> None:
    """Grow the history to `stop` reports, the potholes' summaries as ingestion leaves them."""
    for lo in range(start, stop, INSERT_CHUNK):
        with factory() as session, session.begin():
            rows = list(history_rows(lo, min(stop, lo + INSERT_CHUNK), rng))
            session.execute(insert(RhWindow), [w for w, _ in rows])
            session.execute(insert(RhPotholeReport), [r for _, r in rows])
    with factory() as session, session.begin():
        for site, at in enumerate(SITES_M):
            n = len(range(site, stop, len(SITES_M)))
            vehicles = min(VEHICLES, n)
            pothole = session.get(RhPothole, f"{SEGMENT}:p{site}") or RhPothole(
                id=f"{SEGMENT}:p{site}", segment=SEGMENT, status="confirmed", first_seen=T0
            )
            pothole.chainage_m, pothole.lat, pothole.lon = at, 22.54, 114.05
            pothole.reports, pothole.vehicles = n, vehicles
            pothole.confidence = pothole_confidence(vehicles, n - vehicles)
            pothole.confirmed_tx, pothole.last_seen = "c" * 64, T0 + 10.0 * stop
            session.merge(pothole)


def one_ingest(rt: Runtime, factory: sessionmaker[Session], history: int) -> Callable[[], None]:
    """One window's pothole work, rolled back: a known vehicle reports the first pothole."""
    window_id = 10_000_000 + history

    def call() -> None:
        with factory() as session:
            session.begin()
            window = next(history_rows(history, history + 1, random.Random(0)))[0]
            session.execute(insert(RhWindow), [{**window, "id": window_id}])
            report = potholes.Report(
                segment=SEGMENT,
                window_id=window_id,
                device="veh-0",
                message_hash=window["hash"],
                t0=window["t0"],
                chainage_m=SITES_M[0] + 0.4,
                peak_mps2=4.0,
            )
            before = potholes.file_reports(rt=rt, session=session, reports=[report])
            potholes.confirm_grown(rt=rt, session=session, vehicles_before=before)
            # A 48 m window from the segment's start: it reports the first pothole and passes
            # the second cleanly
            event = {"kind": "pothole", "reported": True, "offset_m": report.chainage_m}
            placed = Placed(
                window_id,
                "veh-0",
                window["hash"],
                window["t0"],
                SEGMENT,
                0.0,
                1,
                [event],
                span_m=48.0,
            )
            repairs.note_passes(rt=rt, session=session, windows=[placed])
            session.flush()
            session.rollback()

    return call


def run() -> list[Result]:
    out: list[Result] = []
    rng = random.Random(2017)
    with bench_database("roadhealth.db") as (url, backend):
        engine, factory = make_session_factory(url, Base.metadata)
        rt = runtime()
        stored = 0
        for history in HISTORY:
            store(factory, stored, history, rng)
            stored = history
            ms = ms_per_call(
                one_ingest(rt, factory, history), min_calls=MIN_CALLS, budget_s=BUDGET_S
            )
            out.append(
                {
                    "bench": "pothole_ingest_ms",
                    "value": round(ms, 3),
                    "unit": "ms/ingest",
                    "database": backend,
                    "reports_on_segment": history,
                    "potholes_on_segment": len(SITES_M),
                    "note": "a report filed, grouped, counted; a clean pass noted; rolled back",
                }
            )
        engine.dispose()
    return out
