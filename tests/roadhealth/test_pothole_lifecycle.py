"""A confirmed pothole that vehicles then drive over without a report is marked repaired, on the
map, in an alert and anchored on the chain; a later one at the same place is a new pothole."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from iot_gateway.simulator import PassFleet
from services.roadhealth.models import RhPotholeWatch
from services.roadhealth.service.repairs import REPAIR_LABEL
from smartcity.roadhealth_harness import Harness, running

T0 = 1_770_000_000.0
DAY_S = 86_400.0


def drive_all(h: Harness, fleet: PassFleet, vehicles: list[Any], t0: float, laps: int) -> list[Any]:
    payloads = []
    segments = sorted(fleet.truth)
    for lap in range(laps):
        for i, vehicle in enumerate(vehicles):
            for j, segment in enumerate(segments):
                payloads += fleet.drive(
                    vehicle,
                    segment,
                    speed_mps=9.0 + 2 * i,
                    t0=t0 + lap * 20_000 + i * 3000 + j * 100,
                    reverse=i % 2 == 1,
                    seed=1000 * lap + 100 * j + i,
                )
    return payloads


def plan(fleet: PassFleet, *, potholes: bool) -> None:
    for j, segment in enumerate(sorted(fleet.index.lengths_m)[:6]):
        fleet.plan(segment, base_iri=2.0, seed=j, potholes=1 if potholes and j % 3 == 0 else 0)


def get(h: Harness, path: str) -> Any:
    answer = h.client.get(f"/roadhealth/v1/{path}", headers=h.auth("road-authority"))
    assert answer.status_code == 200, answer.text
    return answer.json()


def watches(h: Harness) -> dict[str, tuple[int, float | None]]:
    engine = create_engine(h.runtime.ctx.database_url)
    try:
        with Session(engine) as session:
            return {
                w.pothole: (w.passes, w.repaired_at)
                for w in session.scalars(select(RhPotholeWatch))
            }
    finally:
        engine.dispose()


def potholes_to_close(h: Harness) -> tuple[list[Any], PassFleet]:
    """Four vehicles and a fleet with potholes planted; 4 clean passes by 3 vehicles, a day
    after the last report, close a pothole."""
    h.runtime.settings = dataclasses.replace(
        h.runtime.settings,
        pothole_repair_passes=4,
        pothole_repair_vehicles=3,
        pothole_repair_quiet_s=DAY_S,
    )
    vehicles = [h.register(f"veh-{i}", ("car", "van", "bus", "car")[i], 21 + i) for i in range(4)]
    fleet = PassFleet(h.runtime.index)
    plan(fleet, potholes=True)
    return vehicles, fleet


def test_a_pothole_passed_cleanly_is_repaired_and_a_new_one_there_is_new(
    tmp_path: Path, db_url: str
) -> None:
    with running(tmp_path, db_url) as h:
        vehicles, fleet = potholes_to_close(h)
        _, answer = h.ingest(drive_all(h, fleet, vehicles, T0, laps=1))
        assert answer.status_code == 200, answer.text
        confirmed = {f["id"]: f for f in get(h, "potholes")["features"]}
        assert confirmed, "the planted potholes are confirmed first"

        # The road is mended; two days later every vehicle drives it twice, and none reports
        plan(fleet, potholes=False)
        body, answer = h.ingest(drive_all(h, fleet, vehicles, T0 + 2 * DAY_S, laps=2))
        assert answer.status_code == 200, answer.text
        assert get(h, "potholes")["features"] == []
        repaired = {f["id"]: f for f in get(h, "potholes?repaired=true")["features"]}
        assert set(repaired) == set(confirmed)
        for pothole, feature in repaired.items():
            props = feature["properties"]
            assert props["status"] == "repaired"
            assert props["confirmed_tx"] == confirmed[pothole]["properties"]["confirmed_tx"]
            assert props["repaired_at"] >= T0 + 2 * DAY_S
            # Anchored on the chain: counts and an evidence hash, no device, no reading
            record = h.ledger.read("anchors", f"batch:{props['repaired_tx']}")
            assert record["label"] == REPAIR_LABEL
            assert record["metadata"]["pothole"] == pothole
            assert record["metadata"]["clean_passes"] >= 4
            assert record["metadata"]["vehicles"] >= 3
            assert "veh-" not in str(record)
        alerts = [a for a in get(h, "alerts") if a["kind"] == "pothole_repaired"]
        assert {a["data"]["pothole"] for a in alerts} == set(confirmed)
        assert {a["chain_tx"] for a in alerts} == {
            f["properties"]["repaired_tx"] for f in repaired.values()
        }
        # The gateway sending the batch again gets the same answer and counts no pass twice
        counted = watches(h)
        again = h.client.post("/roadhealth/v1/ingest", json=body, headers=h.auth("bsn-operator"))
        assert again.json() == answer.json()
        assert watches(h) == counted

        # A new pothole at the same place, days later: a new pothole, the old stays repaired
        plan(fleet, potholes=True)
        _, answer = h.ingest(drive_all(h, fleet, vehicles, T0 + 5 * DAY_S, laps=1))
        assert answer.status_code == 200, answer.text
        fresh = {f["id"]: f for f in get(h, "potholes")["features"]}
        assert fresh and not set(fresh) & set(confirmed)
        for feature in fresh.values():
            old = [
                r
                for r in repaired.values()
                if r["properties"]["segment"] == feature["properties"]["segment"]
            ]
            assert any(
                abs(r["properties"]["chainage_m"] - feature["properties"]["chainage_m"]) < 5
                for r in old
            )
        still = {f["id"] for f in get(h, "potholes?repaired=true")["features"]} - set(fresh)
        assert still == set(confirmed)


def test_a_candidate_never_confirmed_and_passed_cleanly_is_dismissed_not_repaired(
    tmp_path: Path, db_url: str
) -> None:
    with running(tmp_path, db_url) as h:
        vehicles, fleet = potholes_to_close(h)
        # One vehicle reports the potholes: candidates, which one vehicle cannot confirm
        _, answer = h.ingest(drive_all(h, fleet, vehicles[:1], T0, laps=1))
        assert answer.status_code == 200, answer.text
        candidates = {f["id"]: f for f in get(h, "potholes?candidates=true")["features"]}
        assert candidates and get(h, "potholes")["features"] == []
        assert {f["properties"]["status"] for f in candidates.values()} == {"candidate"}

        # Two days later every vehicle passes them cleanly, twice
        plan(fleet, potholes=False)
        _, answer = h.ingest(drive_all(h, fleet, vehicles, T0 + 2 * DAY_S, laps=2))
        assert answer.status_code == 200, answer.text
        assert get(h, "potholes?candidates=true")["features"] == []
        # Nothing was confirmed, so nothing is reported repaired: not listed, alerted or anchored
        assert get(h, "potholes?repaired=true&candidates=true")["features"] == []
        assert not [a for a in get(h, "alerts") if a["kind"] == "pothole_repaired"]
        dismissed = {f["id"]: f for f in get(h, "potholes?dismissed=true")["features"]}
        assert set(dismissed) == set(candidates)
        for feature in dismissed.values():
            props = feature["properties"]
            assert props["status"] == "dismissed"
            assert props["dismissed_at"] >= T0 + 2 * DAY_S
            assert props["repaired_at"] is None and props["repaired_tx"] is None
            assert props["confirmed_tx"] is None
