"""Potholes the gateway's sensor simulator plants are confirmed once each, where they are.

The simulator (iot_gateway.simulator, as `smartcity up --simulate` runs it) drives six vehicles
of three classes over the first six demo segments with 3 m GPS jitter; its windows go through
the real ingestion endpoint (anchored, signed), minus the MQTT hop. Among its potholes are the
two cases that used to fail: one 38 m into a segment whose first window took its heading from
the previous street (its reports fell before the segment's start), and one whose reports 6-7 m
apart were confirmed as two potholes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iot_gateway.simulator import PassFleet, SegmentTruth, Vehicle
from services.roadhealth.analytics.profile import (
    Anomaly,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.assessment.windows import default_classifier
from services.roadhealth.wire import sign_payload
from smartcity.iot import demo_network, planted_potholes
from smartcity.roadhealth_harness import replay_simulator, running, score_potholes

TOLERANCE_M = 5.0
T0 = 1_770_000_000.0


def test_simulated_fleet_potholes_confirmed_once_each_within_metres(
    tmp_path: Path, db_url: str
) -> None:
    network = demo_network(city="sim", seed=0, n_devices=6, n_segments=6)
    planted = planted_potholes(network)
    with running(tmp_path, db_url) as h:
        replay_simulator(h, network, laps=2)
        doc = h.client.get("/roadhealth/v1/potholes", headers=h.auth("road-authority")).json()
    confirmed = [
        (f["properties"]["segment"], f["properties"]["chainage_m"]) for f in doc["features"]
    ]
    score = score_potholes(confirmed, planted, tolerance_m=TOLERANCE_M)
    assert len(planted) == 6
    assert score.recall == 1.0, (confirmed, planted)
    assert score.precision == 1.0, (confirmed, planted)  # no duplicates, no bumps
    assert max(abs(e) for e in score.position_errors_m) <= 3.0, score
    assert all(f["properties"]["vehicles"] >= 3 for f in doc["features"])
    # Each detection names the classifier model that agreed with it
    live = default_classifier().model_id  # type: ignore[union-attr]
    assert all(f["properties"]["models"] == [live] for f in doc["features"])


def _shift_north(vehicle: Vehicle, payload: dict[str, Any], metres: float) -> dict[str, Any]:
    """The same window with its GPS fix `metres` further north, signed again by its device."""
    unsigned = {k: v for k, v in payload.items() if k != "sig"}
    unsigned["lat"] = round(unsigned["lat"] + metres / 111_195.0, 7)
    return sign_payload(vehicle.key, unsigned)


def test_a_window_starting_at_a_junction_without_a_heading_reports_on_its_own_street(
    tmp_path: Path, db_url: str
) -> None:
    """A pass's first window that arrives as its device's last in a batch has no heading yet;
    at a junction its start is as near the crossing street (the GPS fix 2 m up West Street) as
    its own. Its pothole (38 m into Central Avenue) must not be filed 38 m up West Street:
    the window gets its heading when the next batch brings its successor."""
    with running(tmp_path, db_url) as h:
        vehicles = [h.register(f"car-{i}", "car", 60 + i) for i in range(3)]
        fleet = PassFleet(h.runtime.index)
        fleet.truth["central-ave-1"] = SegmentTruth(
            "central-ave-1",
            generate_road_profile(
                length_m=h.runtime.index.lengths_m["central-ave-1"],
                seed=5,
                gd_n0_m3=estimate_gd_n0_for_iri(1.2),
                anomalies=(Anomaly("pothole", 38.0, 0.6, 0.06),),
            ),
        )
        for i, vehicle in enumerate(vehicles):
            payloads = fleet.drive(
                vehicle,
                "central-ave-1",
                speed_mps=12.0 + i,  # the pothole 0.6-0.9 s from the first window's end
                t0=T0 + 1000 * i,
                gps_jitter_m=0.0,
                seed=i,
            )
            first = _shift_north(vehicle, payloads[0], 2.0)
            assert h.ingest([first])[1].status_code == 200
            assert h.ingest(payloads[1:])[1].status_code == 200
        doc = h.client.get("/roadhealth/v1/potholes", headers=h.auth("road-authority")).json()
    where = [(f["properties"]["segment"], f["properties"]["chainage_m"]) for f in doc["features"]]
    assert len(where) == 1, where
    assert where[0][0] == "central-ave-1" and abs(where[0][1] - 38.0) <= 3.0, where
