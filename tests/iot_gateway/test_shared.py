"""Two gateway processes on one broker split the stream; road-health holds each message once."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, build_network
from smartcity.suite import service_database_url


def _stored(outbox: Path) -> list[tuple[str, int]]:
    engine = create_engine(f"sqlite:///{outbox}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device, seq FROM iot_gateway_messages")).all()
    engine.dispose()
    return sorted((r[0], int(r[1])) for r in rows)


def test_two_gateway_processes_store_every_accepted_message_exactly_once_downstream(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, gw: Any
) -> None:
    network = build_network(city=city, n_devices=6, n_segments=3, seed=12)
    suite.register(network)
    outboxes = [tmp_path / f"outbox-{i}.db" for i in range(2)]
    processes, health = [], []
    for i, outbox in enumerate(outboxes):
        ready = tmp_path / f"ready-{i}"
        process = gw.spawn(
            suite, mqtt_url, city, f"sqlite:///{outbox}", ready, instance=f"gw-{city}-{i}"
        )
        processes.append(process)
        health.append(gw.wait_ready(process, ready))
    fleet = Fleet(network, seed=6)
    report = publish_fleet(connect_publisher(mqtt_url, f"pub-{city}"), fleet, count=400)
    sent = sorted(fleet.sent_good)
    assert report.good == len(sent) == 400

    engine = create_engine(service_database_url(suite.data, "roadhealth"))

    def road_health_rows() -> list[tuple[str, int]]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT device, seq FROM roadhealth_windows")).all()
        return sorted((r[0], int(r[1])) for r in rows)

    gw.wait_until(lambda: len(road_health_rows()) >= len(sent), timeout_s=60, what="road-health")
    assert road_health_rows() == sent
    protocol = httpx.get(f"{health[0]}/healthz").json()["mqtt"]["protocol"]
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
    first, second = (_stored(o) for o in outboxes)
    if protocol == "5":
        # A shared subscription gives each message to one member of the group
        assert first and second and not set(first) & set(second)
        assert sorted(first + second) == sent
    else:
        # MQTT 3.1.1 (the embedded broker) has no shared subscriptions: both get everything,
        # and road-health's idempotent ingestion still stores each message once
        assert first == second == sent
