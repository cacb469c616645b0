"""kill -9 a real gateway process at random moments while telemetry flows: none lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, build_network
from smartcity.suite import service_database_url


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_stores_nothing_twice(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, gw: Any
) -> None:
    network = build_network(city=city, n_devices=6, n_segments=3, seed=11)
    suite.register(network)
    outbox, ready = tmp_path / "outbox.db", tmp_path / "ready"
    process = gw.spawn(suite, mqtt_url, city, f"sqlite:///{outbox}", ready)
    gw.wait_ready(process, ready)
    fleet = Fleet(network, seed=5)
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    report: dict[str, Any] = {}
    sender = threading.Thread(
        target=lambda: report.update(r=publish_fleet(publisher, fleet, count=900, rate_per_s=100.0))
    )
    sender.start()
    rng = random.Random(city)
    kills = 0
    while kills < 3:
        time.sleep(rng.uniform(0.1, 1.5))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        process = gw.spawn(suite, mqtt_url, city, f"sqlite:///{outbox}", ready)
        gw.wait_ready(process, ready)
    sender.join()
    sent = sorted(fleet.sent_good)
    assert len(sent) == report["r"].good == 900

    # Road-health ends up holding every message exactly once
    engine = create_engine(service_database_url(suite.data, "roadhealth"))

    def road_health_rows() -> list[tuple[str, int]]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT device, seq FROM roadhealth_windows")).all()
        return sorted((r[0], int(r[1])) for r in rows)

    gw.wait_until(
        lambda: len(road_health_rows()) >= len(sent),
        timeout_s=60,
        what="road-health to hold every message",
    )
    assert road_health_rows() == sent
    process.send_signal(signal.SIGTERM)
    process.wait(15)
    # ... and the outbox once each, every batch anchored and forwarded
    local = create_engine(f"sqlite:///{outbox}")
    with local.connect() as conn:
        stored = conn.execute(text("SELECT device, seq FROM iot_gateway_messages")).all()
        states = {
            str(state): int(n)
            for state, n in conn.execute(
                text("SELECT state, count(*) FROM iot_gateway_batches GROUP BY state")
            ).all()
        }
    assert sorted((r[0], int(r[1])) for r in stored) == sent
    assert set(states) == {"forwarded"}
