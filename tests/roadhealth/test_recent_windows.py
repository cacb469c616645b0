"""A segment's estimate reads its newest windows: each asked-for segment with its own newest
`limit` (ties by hash), oldest first, as the one-segment query did and the row_number() ranking
after it. Each segment's are an index search (ix_roadhealth_windows_segment_newest), so the read
does not grow with the segment's history, and a database made before that index gets it when
the service starts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from chain.db import make_engine
from services.common.db import Base, make_session_factory, prepare_schema
from services.roadhealth.models import WINDOWS_NEWEST, RhWindow
from services.roadhealth.service.conditions import (
    SEGMENTS_PER_STATEMENT,
    WINDOW_COLUMNS,
    recent_rows,
)
from smartcity.roadhealth_harness import running

SEGMENTS = ("a", "b", "c")


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


def _ranked(session: Session, ids: list[str], limit: int) -> dict[str, list[Any]]:
    """The row_number() ranking recent_rows replaced: every window of the segments ranked."""
    ranked = select(
        *WINDOW_COLUMNS,
        RhWindow.segment,
        func.row_number()
        .over(partition_by=RhWindow.segment, order_by=(RhWindow.t0.desc(), RhWindow.hash.desc()))
        .label("rank"),
    ).where(RhWindow.segment.in_(ids), RhWindow.iri.is_not(None))
    inner = ranked.subquery()
    query = select(*(c for c in inner.c if c.name != "rank")).order_by(
        inner.c.segment, inner.c.t0, inner.c.hash
    )
    if limit > 0:
        query = query.where(inner.c.rank <= limit)
    out: dict[str, list[Any]] = {}
    for row in session.execute(query):
        out.setdefault(row.segment, []).append(tuple(row))
    return out


def _as_tuples(rows: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {segment: [tuple(r) for r in found] for segment, found in rows.items()}


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = make_session_factory(db_url, Base.metadata)
    yield factory
    engine.dispose()


# A stored window: segment (None: matched to none), t0 (three values: many ties), IRI or not
stored_windows = st.lists(
    st.tuples(
        st.sampled_from((*SEGMENTS, None)),
        st.integers(min_value=0, max_value=2),
        st.sampled_from((True, True, True, False)),
        st.binary(min_size=32, max_size=32).map(bytes.hex),
    ),
    max_size=30,
    unique_by=lambda w: w[3],  # a window's hash is its own
)
# Two windows at one time, the limit between them: the hash decides which is kept
CUT_AT_A_TIE = [("a", 1, True, "1" * 64), ("a", 1, True, "2" * 64), ("a", 0, True, "3" * 64)]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(windows=CUT_AT_A_TIE, asked=["a"], limit=1)
@given(
    windows=stored_windows,
    asked=st.lists(st.sampled_from((*SEGMENTS, "unknown")), min_size=1, max_size=5),
    limit=st.integers(min_value=0, max_value=5),
)
def test_the_newest_windows_are_those_the_ranking_of_every_window_picked(
    sessions: sessionmaker[Session], windows: list[Any], asked: list[str], limit: int
) -> None:
    with sessions() as session:  # rolled back at the end: each example starts empty
        for seq, (segment, step, has_iri, digest) in enumerate(windows):
            t0 = 100.0 + 0.5 * step
            session.add(_window(segment, seq, t0, 2.0 + seq if has_iri else None, digest))
        session.flush()
        found = _as_tuples(recent_rows(session=session, ids=asked, limit=limit))
        assert found == _ranked(session, asked, limit)
        # The same, said without SQL: newest `limit` by t0 then hash, listed oldest first
        for segment in set(asked):
            mine = sorted(
                (t0_step, digest)
                for s, t0_step, has_iri, digest in windows
                if s == segment and has_iri
            )
            expected = [(100.0 + 0.5 * step, digest) for step, digest in mine]
            expected = expected[-limit:] if limit > 0 else expected
            assert [(r[0], r[4]) for r in found.get(segment, [])] == expected


def test_more_segments_than_one_statement_holds_are_all_read(
    sessions: sessionmaker[Session],
) -> None:
    ids = [f"s{n:03d}" for n in range(2 * SEGMENTS_PER_STATEMENT + 1)]
    with sessions() as session:
        for n, segment in enumerate(ids):
            for i in range(3):
                digest = f"{n:032x}{i:032x}"
                session.add(_window(segment, 3 * n + i, 100.0 + i // 2, 2.0, digest))
        session.flush()
        found = _as_tuples(recent_rows(session=session, ids=ids, limit=2))
        assert found == _ranked(session, ids, 2)
        assert set(found) == set(ids)
        assert {len(rows) for rows in found.values()} == {2}


def test_each_segment_is_an_index_search_not_a_sort_of_its_history(tmp_path: Path) -> None:
    """SQLite's plan: inside each segment's subquery, one search of the index from the newest
    end (no temporary B-tree: the LIMIT stops it after `limit` windows); what is sorted after,
    to list them oldest first, is the at most `limit` windows each subquery returned."""
    engine, sessions = make_session_factory(f"sqlite:///{tmp_path / 'rh.db'}", Base.metadata)
    sent: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with sessions() as session:
        for seq in range(50):
            session.add(_window(SEGMENTS[seq % 3], seq, 100.0 + seq // 2, 2.0, f"{seq:064x}"))
        session.flush()
        sent.clear()
        recent_rows(session=session, ids=list(SEGMENTS), limit=4)
        [(statement, parameters)] = sent
        plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        rows = plan.all()
    subqueries = {node for node, _parent, _, detail in rows if detail.startswith("CO-ROUTINE")}
    inside = [detail for _node, parent, _, detail in rows if parent in subqueries]
    search = f"SEARCH roadhealth_windows USING INDEX {WINDOWS_NEWEST.name} (segment=?)"
    assert inside == [search] * len(SEGMENTS)
    assert [d for *_, d in rows if "roadhealth_windows" in d] == [search] * len(SEGMENTS)
    engine.dispose()


def _windows_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {str(ix["name"]) for ix in inspect(engine).get_indexes(RhWindow.__tablename__)}
    finally:
        engine.dispose()


def test_a_database_made_before_the_index_gets_it_when_the_service_starts(
    tmp_path: Path, db_url: str
) -> None:
    # The service's database as the suite names it: the shared schema, else a file of its own
    url = (
        db_url
        if db_url.startswith("postgresql")
        else f"sqlite:///{tmp_path / 'data' / 'roadhealth.db'}"
    )
    engine, sessions = make_session_factory(url, Base.metadata)
    WINDOWS_NEWEST.drop(engine)  # as an earlier release made the table
    with sessions() as session, session.begin():
        session.add(_window("a", 1, 100.0, 2.0, "a" * 64))
    engine.dispose()
    assert WINDOWS_NEWEST.name not in _windows_indexes(url)
    with running(tmp_path, db_url):
        assert WINDOWS_NEWEST.name in _windows_indexes(url)
    engine = make_engine(url)
    with Session(engine) as session:
        assert [r.hash for r in recent_rows(session=session, ids=["a"], limit=60)["a"]] == [
            "a" * 64
        ]
    engine.dispose()


def test_replicas_starting_together_on_a_database_without_the_index_all_start(
    db_url: str,
) -> None:
    """One builds the index while the others wait for it, then find it: none fails on the
    index another has just made."""
    engine, _ = make_session_factory(db_url, Base.metadata)
    WINDOWS_NEWEST.drop(engine)
    engine.dispose()
    replicas = 4
    start = threading.Barrier(replicas)
    failures: list[BaseException] = []

    def replica() -> None:
        own = make_engine(db_url)
        start.wait()
        try:
            prepare_schema(own, Base.metadata)
        except Exception as exc:  # reported to the test, which names it
            failures.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=replica) for _ in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    assert WINDOWS_NEWEST.name in _windows_indexes(db_url)


def test_a_start_with_the_index_in_place_does_not_wait_for_another_write(tmp_path: Path) -> None:
    """Only a database missing the index takes SQLite's write lock: with another connection
    writing, a restart that has nothing to build goes ahead (here a start that took the lock
    would fail at once: a tenth of a second to wait)."""
    url = f"sqlite:///{tmp_path / 'rh.db'}"
    make_session_factory(url, Base.metadata)[0].dispose()
    writer = create_engine(url).connect()
    writer.exec_driver_sql("BEGIN IMMEDIATE")
    impatient = create_engine(url, connect_args={"timeout": 0.1})
    try:
        prepare_schema(impatient, Base.metadata)
    finally:
        writer.rollback()
        writer.close()
        impatient.dispose()
