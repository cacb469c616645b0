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

from services.roadhealth.analysis import DEFAULT_CLASSIFIER
from services.roadhealth.analytics.anomaly import load_classifier
from services.roadhealth.testing import replay_simulator, running, score_potholes
from smartcity.iot import demo_network, planted_potholes

TOLERANCE_M = 5.0


def test_simulated_fleet_potholes_confirmed_once_each_within_metres(
    tmp_path: Path, db_url: str
) -> None:
    network = demo_network(city="sim", seed=0, n_devices=6, n_segments=6)
    planted = planted_potholes(network)
    with running(tmp_path, db_url) as h:
        replay_simulator(h, network)
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
    shipped = load_classifier(DEFAULT_CLASSIFIER).model_id
    assert all(f["properties"]["models"] == [shipped] for f in doc["features"])
