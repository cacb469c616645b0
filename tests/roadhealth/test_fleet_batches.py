"""A city's fleet, as the gateway seals it: a batch a second holding one window of every vehicle.

Windows arrive before their successors, so each stored window is matched again when the next
one gives it a heading; a window that reported a pothole then files its report anew. The
pothole it named may by then be confirmed, holding other vehicles' reports: every batch must
still be stored (a re-filed report once collided with that pothole's row and the batch was
refused with 409 every time the gateway retried it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iot_gateway.simulator import Fleet
from smartcity.iot import demo_network
from smartcity.roadhealth_harness import register_on_chain, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

T0 = 1_770_000_000.0
VEHICLES = 200
SECONDS = 10


def test_every_batch_of_a_fleet_is_stored(tmp_path: Path, db_url: str) -> None:
    network = demo_network(city="test", seed=0, n_devices=VEHICLES)
    # 4 s windows, as `make up` sends them: the live gate judges only whole 2 s pieces, so
    # 1 s windows report no pothole (assessment/windows.py can_judge)
    fleet = Fleet(network, seed=0, window_s=4.0)
    with running(tmp_path, db_url) as h:
        register_on_chain(h.ledger, h.key("road-authority"), network)
        for second in range(SECONDS):
            payloads: list[dict[str, Any]] = [
                json.loads(fleet.next_message(T0 + second).payload) for _ in range(VEHICLES)
            ]
            _body, answer = h.ingest(payloads)
            assert answer.status_code == 200, (second, answer.text)
            assert answer.json()["stored"] == VEHICLES
        doc = h.client.get("/roadhealth/v1/potholes", headers=h.auth("road-authority")).json()
    # The road authority sees the potholes the fleet confirmed
    assert doc["features"]
    assert {f["properties"]["status"] for f in doc["features"]} == {"confirmed"}
