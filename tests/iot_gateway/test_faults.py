"""The recovery path between the outbox commit and the broker's acknowledgement.

A gateway killed after it stored messages and before it acknowledged them: the broker sends
them again to the restarted gateway, which must recognise each as stored (a duplicate, not a
second row), and road-health must end up with each reading once. The kill is exact: the
gateway's fault switch (SMARTCITY_TEST_FAULT, read only by tests) makes it SIGKILL itself
right after its first outbox commit.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from iot_gateway.gateway import FAULT_VARIABLE, KILL_AFTER_STORE
from iot_gateway.outbox import Outbox
from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, build_network
from smartcity.suite import service_database_url


def _counter(health_url: str, name: str) -> float:
    """A counter of the gateway's /metrics (0 when it was never incremented)."""
    text_ = httpx.get(f"{health_url}/metrics", timeout=5).text
    found = re.search(rf"^iot_gateway_{name}(?:\{{\}})? ([0-9.e+]+)$", text_, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_a_kill_between_the_outbox_commit_and_the_ack_stores_the_redelivery_once(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, gw: Any, outbox_url: str
) -> None:
    network = build_network(city=city, n_devices=3, n_segments=2, seed=17)
    suite.register(network)
    ready = tmp_path / "ready"
    faulty = gw.spawn(
        suite, mqtt_url, city, outbox_url, ready, env={FAULT_VARIABLE: KILL_AFTER_STORE}
    )
    gw.wait_ready(faulty, ready)
    fleet = Fleet(network, seed=3)
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    report = publish_fleet(publisher, fleet, count=30)
    assert report.good == 30
    # The gateway dies by its own SIGKILL once its first group is committed, acking nothing
    assert faulty.wait(30) == -signal.SIGKILL
    outbox = Outbox(outbox_url, owner="nobody")
    before = outbox.stored_messages()
    assert before, "the gateway died before it stored anything"
    assert outbox.batch_states() == {}  # nothing sealed or forwarded before the kill

    # Restarted without the fault: the broker redelivers what was never acknowledged
    restarted = gw.spawn(suite, mqtt_url, city, outbox_url, ready)
    health = gw.wait_ready(restarted, ready)
    sent = sorted(fleet.sent_good)
    engine = create_engine(service_database_url(suite.data, "roadhealth"))

    def road_health_rows() -> list[tuple[str, int]]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT device, seq FROM roadhealth_windows")).all()
        return sorted((r[0], int(r[1])) for r in rows)

    gw.wait_until(lambda: road_health_rows() == sent, timeout_s=60, what="every reading once")
    stored = outbox.stored_messages()
    assert sorted((d, s) for d, s, _ in stored) == sent  # each (device, seq) one row
    assert stored[: len(before)] == before  # what was stored before the kill is kept as is
    # The first gateway's messages came again, and the restarted one knew them
    assert _counter(health, "duplicates_total") >= len(before)
    assert _counter(health, "accepted_total") == len(sent) - len(before)
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(15)
    outbox.close()
