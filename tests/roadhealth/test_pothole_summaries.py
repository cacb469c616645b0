"""A pothole's running summary stays what its reports say, however they arrive; a database made
before the lifecycle gets its table and indexes at start and keeps working; bad settings are
refused by name."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, inspect, select, text
from sqlalchemy.orm import Session

from bench._databases import stored_window
from services.common.db import Base, prepare_schema
from services.roadhealth.models import (
    POTHOLES_ALONG,
    REPORTS_BY_DEVICE,
    RhPothole,
    RhPotholeReport,
    RhWindow,
)
from services.roadhealth.network.geo import Segment
from services.roadhealth.network.matching import SegmentIndex
from services.roadhealth.runtime import Runtime, Settings, SettingsError
from services.roadhealth.service import potholes, repairs
from services.roadhealth.service.placement import Placed

T0 = 1_770_000_000.0


class Chain:
    def __init__(self) -> None:
        self.anchored: list[dict[str, Any]] = []

    def attest_many(self, method: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"status": "ok", "tx": "c" * 64} for _ in batch]

    def anchor_records(self, label: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.anchored += records
        return [{"status": "ok", "tx": "d" * 64} for _ in records]


def runtime(**overrides: Any) -> Runtime:
    segment = Segment("main", "Main", ((114.05, 22.54), (114.05 + 300 / 102_900, 22.54)), {})
    rt = SimpleNamespace(
        settings=Settings(**overrides), index=SegmentIndex([segment]), chain=Chain()
    )
    return cast(Runtime, rt)


def database(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    prepare_schema(engine, Base.metadata)
    return engine


def window(session: Session, i: int, device: str) -> str:
    digest = hashlib.sha256(f"w{i}".encode()).hexdigest()
    row = stored_window(i, id=i, device=device, hash=digest, t0=T0 + i, speed_mps=10.0)
    session.execute(insert(RhWindow), [row])
    return digest


def file(rt: Runtime, session: Session, reports: list[tuple[int, str, float]]) -> None:
    filed = [
        potholes.Report("main", i, device, window(session, i, device), T0 + i, at, 4.0)
        for i, device, at in reports
    ]
    before = potholes.file_reports(rt=rt, session=session, reports=filed)
    potholes.confirm_grown(rt=rt, session=session, vehicles_before=before)


reports_strategy = st.lists(
    st.tuples(
        st.sampled_from([40.0, 120.0, 200.0]),
        st.floats(-4.0, 4.0),
        st.sampled_from([f"veh-{k}" for k in range(5)]),
    ),
    min_size=1,
    max_size=60,
).flatmap(lambda rs: st.tuples(st.just(rs), st.integers(1, len(rs))))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=reports_strategy)
def test_summaries_are_what_the_reports_say_however_they_arrive(
    tmp_path_factory: pytest.TempPathFactory, drawn: tuple[list[tuple[float, float, str]], int]
) -> None:
    spread, batch = drawn
    engine = database(tmp_path_factory.mktemp("db") / "rh.db")
    rt = runtime()
    rows = [(i + 1, device, site + noise) for i, (site, noise, device) in enumerate(spread)]
    for start in range(0, len(rows), batch):
        with Session(engine) as session, session.begin():
            file(rt, session, rows[start : start + batch])
    with Session(engine) as session:
        found = session.scalars(select(RhPothole)).all()
        filed = session.execute(select(RhPotholeReport)).scalars().all()
        assert len(filed) == len(rows)  # every report filed once, under a stored pothole
        for p in found:
            mine = [r for r in filed if r.pothole == p.id]
            assert p.reports == len(mine)
            assert p.vehicles == len({r.device for r in mine})
            assert p.chainage_m == pytest.approx(sum(r.chainage_m for r in mine) / len(mine))
            assert (p.status == "confirmed") == (p.vehicles >= 3)
        # Sites 80 m apart are never one pothole
        for p in found:
            sites = {
                min((40.0, 120.0, 200.0), key=lambda s: abs(s - r.chainage_m))
                for r in filed
                if r.pothole == p.id
            }
            assert len(sites) == 1
    engine.dispose()


def test_a_database_made_before_the_lifecycle_keeps_working(tmp_path: Path) -> None:
    engine = database(tmp_path / "old.db")
    rt = runtime(pothole_repair_passes=2, pothole_repair_vehicles=2, pothole_repair_quiet_s=0)
    with Session(engine) as session, session.begin():
        file(rt, session, [(1, "veh-0", 100.0), (2, "veh-1", 101.0), (3, "veh-2", 99.5)])
    # As an earlier release left it: no watch table, neither new index
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE roadhealth_pothole_watch"))
        conn.execute(text(f"DROP INDEX {POTHOLES_ALONG.name}"))
        conn.execute(text(f"DROP INDEX {REPORTS_BY_DEVICE.name}"))
    prepare_schema(engine, Base.metadata)  # the service's start
    inspector = inspect(engine)
    assert "roadhealth_pothole_watch" in inspector.get_table_names()
    assert POTHOLES_ALONG.name in {i["name"] for i in inspector.get_indexes("roadhealth_potholes")}
    with Session(engine) as session, session.begin():
        (old,) = session.scalars(select(RhPothole)).all()
        assert (old.status, old.reports, old.vehicles) == ("confirmed", 3, 3)
        file(rt, session, [(4, "veh-3", 100.5)])
        assert (old.reports, old.vehicles) == (4, 4)
        for i, device in ((5, "veh-0"), (6, "veh-1")):
            digest = window(session, i, device)
            passing = Placed(i, device, digest, T0 + i, "main", 80.0, 1, [], span_m=40.0)
            repairs.note_passes(rt=rt, session=session, windows=[passing])
        assert old.status == "repaired"
        assert cast(Chain, rt.chain).anchored[0]["pothole"] == old.id
        # A report there now starts a new pothole
        file(rt, session, [(7, "veh-4", 100.0)])
        (new,) = session.scalars(select(RhPothole).where(RhPothole.status == "candidate")).all()
        assert new.id != old.id and old.status == "repaired"
    engine.dispose()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pothole_repair_passes": 0}, "pothole_repair_passes must be a whole number >= 1"),
        ({"pothole_repair_vehicles": 2.5}, "pothole_repair_vehicles must be a whole number"),
        ({"pothole_repair_vehicles": 30}, "pothole_repair_vehicles cannot exceed"),
        ({"pothole_repair_quiet_s": -1.0}, "pothole_repair_quiet_s must be a number >= 0"),
        ({"pothole_pass_margin_m": float("inf")}, "pothole_pass_margin_m must be a number"),
        ({"report_position_sigma_m": 0}, "report_position_sigma_m must be a number > 0"),
    ],
)
def test_bad_pothole_settings_are_refused_by_name(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**overrides)
