"""A segment's estimate reads its newest windows: all the batch's segments in one statement,
each with its own newest `limit` (ties by hash), oldest first, as the one-segment query did."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import Base, make_session_factory
from services.roadhealth.models import RhWindow
from services.roadhealth.service.conditions import WINDOW_COLUMNS, recent_rows


def _window(segment: str | None, seq: int, t0: float, iri: float | None, digest: str) -> RhWindow:
    return RhWindow(
        device="car-1",
        seq=seq,
        hash=digest,
        payload="{}",
        topic="t",
        t0=t0,
        rate_hz=50,
        lat=0.0,
        lon=0.0,
        speed_mps=10.0,
        samples=200,
        vehicle_class="car",
        anchor_tx="a" * 64,
        leaf_index=seq,
        root="r" * 64,
        segment=segment,
        iri=iri,
        anomalies=[],
    )


def _one_segment(session: Session, segment: str, limit: int) -> list[tuple[float, str]]:
    """The query recent_rows replaced, for one segment."""
    query = (
        select(*WINDOW_COLUMNS)
        .where(RhWindow.segment == segment, RhWindow.iri.is_not(None))
        .order_by(RhWindow.t0.desc(), RhWindow.hash.desc())
        .limit(limit)
    )
    return [(r.t0, r.hash) for r in session.execute(query).all()[::-1]]


def test_each_segment_gets_its_own_newest_windows(tmp_path: Path, db_url: str) -> None:
    _engine, factory = make_session_factory(db_url, Base.metadata)
    with factory() as session:
        seq = 0
        for segment, count in (("a", 7), ("b", 2), ("c", 5)):
            for i in range(count):
                seq += 1
                # Pairs of windows at one time: the hash breaks the tie
                session.add(_window(segment, seq, 100.0 + i // 2, 2.0, f"{segment}{seq:063x}"[:64]))
        session.add(_window("a", 99, 500.0, None, "f" * 64))  # no IRI: never used
        session.add(_window(None, 98, 600.0, 3.0, "e" * 64))  # unmatched
        session.flush()
        rows = recent_rows(session=session, ids=["a", "b", "c", "d"], limit=3)
        assert set(rows) == {"a", "b", "c"}
        for segment in ("a", "b", "c"):
            assert [(r.t0, r.hash) for r in rows[segment]] == _one_segment(session, segment, 3)
        assert len(rows["a"]) == 3 and len(rows["b"]) == 2
        everything = recent_rows(session=session, ids=["a"], limit=0)
        assert [(r.t0, r.hash) for r in everything["a"]] == _one_segment(session, "a", 100)
