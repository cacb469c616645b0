"""Two road-health processes on one database share the ingest, behind two gateway processes.

Each gateway forwards to its own replica (as compose.yaml can run them); meanwhile the same
anchored batch is posted to both replicas at once, and two overlapping batches to one each.
Every reading must be stored once, each from the batch that anchored it, and every segment's
state must equal what a single replica makes of the same readings posted one batch after the
other: the result may not depend on which process stored which batch first.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from chain.auth import mint_token
from iot_gateway.publisher import connect_publisher
from iot_gateway.simulator import Fleet
from iot_gateway.source import BrokerAddress
from services.common.ledger import call
from services.roadhealth.wire import sign_payload
from smartcity.iot import demo_network
from smartcity.roadhealth_harness import ProcessStack, anchored_bodies, register_on_chain

from ..conftest import free_port, fresh_database_url
from ..iot_gateway.conftest import start_private_broker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PUBLISHED = 160  # readings through MQTT and the gateways
EXTRA = 40  # readings posted straight to the replicas


def _backend() -> str:
    url = os.environ.get("SMARTCITY_DATABASE_URL", "")
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """Mosquitto at SMARTCITY_MQTT_URL when reachable (MQTT 5: the gateways split the stream),
    else a broker of the test's own."""
    url = os.environ.get("SMARTCITY_MQTT_URL")
    if url and BrokerAddress.parse(url).reachable():
        yield url
        return
    private = start_private_broker(tmp_path / "broker")
    yield private.url
    private.stop()


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[tuple[ProcessStack, ProcessStack]]:
    """Two deployments, each with a chain of its own: the replicas' and the single one's."""
    made = tuple(ProcessStack(tmp_path / name, free_port=free_port) for name in ("two", "one"))
    yield made  # type: ignore[misc]
    for stack in made:
        stack.stop()


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Fresh databases (PostgreSQL schemas or SQLite files), dropped after the test."""
    drops: list[Callable[[], None]] = []

    def make() -> str:
        url, drop = fresh_database_url(_backend(), tmp_path)
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        drop()


def test_two_replicas_behind_two_gateways_store_each_reading_once_as_one_replica_would(
    stacks: tuple[ProcessStack, ProcessStack], databases: Callable[[], str], broker: str
) -> None:
    stack, solo = stacks
    city = f"r{uuid.uuid4().hex[:8]}"
    network = demo_network(city=city, seed=3, n_devices=4)
    fleet = Fleet(network, seed=3, window_s=4.0)
    start = time.time() - 3600  # the gateways take readings up to hours old, none from ahead
    sent = [fleet.next_message(start + 0.25 * i) for i in range(PUBLISHED + EXTRA)]
    payloads = [json.loads(m.payload) for m in sent]
    published, extra = sent[:PUBLISHED], payloads[PUBLISHED:]

    for deployment in stacks:
        deployment.start_node(wait=False)
    for deployment in stacks:
        deployment.wait_node()
    shared, alone = databases(), databases()
    # Both replicas start at once on the new database (tables, the demo network: once)
    urls = [stack.start_roadhealth(f"roadhealth-{i}", shared) for i in range(2)]
    single = solo.start_roadhealth("roadhealth", alone)
    for i, url in enumerate(urls):
        stack.wait_ready(f"roadhealth-{i}", url)
    solo.wait_ready("roadhealth", single)
    for deployment in stacks:
        ledger = deployment.ledger("road-authority")
        register_on_chain(ledger, deployment.home.org_key("road-authority"), network)
        ledger.client.close()
    for i, url in enumerate(urls):
        _spawn_gateway(stack, i, url, broker, city)
    for i in range(2):
        stack.wait_ready(f"gateway-{i}", _ready_url(stack, i))

    # Straight posts while the gateways forward: A to both replicas at once, then B and C
    # (sharing ten readings) to one each at once
    ledger, operator = stack.ledger("bsn-operator"), stack.home.org_key("bsn-operator")
    headers = _bearer(stack)
    a, b, c = anchored_bodies(ledger, operator, [extra[0:20], extra[10:30], extra[20:40]])
    answers: dict[str, httpx.Response] = {}

    def post_at_once(*posts: tuple[str, str, dict[str, Any]]) -> None:
        def post(key: str, url: str, body: dict[str, Any]) -> None:
            answers[key] = httpx.post(f"{url}/v1/ingest", json=body, headers=headers, timeout=120)

        threads = [threading.Thread(target=post, args=p) for p in posts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)

    publisher = connect_publisher(broker, f"pub-{city}")
    infos = [publisher.publish(m.topic, m.payload, qos=1) for m in published[: PUBLISHED // 2]]
    post_at_once(("a0", urls[0], a), ("a1", urls[1], a))
    infos += [publisher.publish(m.topic, m.payload, qos=1) for m in published[PUBLISHED // 2 :]]
    post_at_once(("b", urls[1], b), ("c", urls[0], c))
    for info in infos:
        info.wait_for_publish(30)
    publisher.loop_stop()
    publisher.disconnect()

    # One batch sent twice at once is applied once: both answers are the first one's
    assert answers["a0"].status_code == answers["a1"].status_code == 200, answers
    assert answers["a0"].json() == answers["a1"].json()
    assert answers["a0"].json()["stored"] == 20
    again = httpx.post(f"{urls[1]}/v1/ingest", json=a, headers=headers, timeout=60)
    assert again.json() == answers["a0"].json()
    # Readings in two batches stored at once: each by one of them, a duplicate in the other
    assert answers["b"].status_code == answers["c"].status_code == 200
    status_b = [r["status"] for r in answers["b"].json()["results"]]
    status_c = [r["status"] for r in answers["c"].json()["results"]]
    assert status_b[:10] == ["duplicate"] * 10  # A's
    for in_b, in_c in zip(status_b[10:], status_c[:10], strict=True):
        assert {in_b, in_c} == {"stored", "duplicate"}
    assert status_c[10:] == ["stored"] * 10

    expected = sorted((p["device"], p["seq"]) for p in payloads)
    engine = create_engine(shared)
    try:
        deadline = time.monotonic() + 90
        while _count(engine) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.25)
        readings = _readings(engine)
        assert sorted(readings) == expected  # every reading, once
        assert _anchored_where_stored(engine) == len(expected)
        replicas = _state(engine)
    finally:
        engine.dispose()

    ledger.client.close()

    # One replica, the same readings, one batch after the other
    ledger = solo.ledger("bsn-operator")
    batches = [payloads[i : i + 25] for i in range(0, len(payloads), 25)]
    for body in anchored_bodies(ledger, solo.home.org_key("bsn-operator"), batches):
        answer = httpx.post(f"{single}/v1/ingest", json=body, headers=_bearer(solo), timeout=120)
        assert answer.status_code == 200, answer.text
    ledger.client.close()
    engine = create_engine(alone)
    try:
        reference = _state(engine)
    finally:
        engine.dispose()

    assert len([s for s in reference["segments"].values() if s[0] is not None]) >= 3
    assert reference["segments"] == replicas["segments"]
    assert reference["windows"] == replicas["windows"]
    assert reference["reports"] == replicas["reports"]

    # A device suspended on the chain (not through road-health) is refused by the replicas,
    # which keep device records while the chain's events leave them unchanged
    device = network.devices[0]
    ledger = stack.ledger("road-authority")
    receipt = call(
        ledger,
        stack.home.org_key("road-authority"),
        "roadhealth",
        "suspend_device",
        {"device": device.id},
    )
    assert receipt["status"] == "ok", receipt
    last = max((p for p in payloads if p["device"] == device.id), key=lambda p: p["seq"])
    codes = []
    for seq in range(last["seq"] + 1, last["seq"] + 21):
        unsigned = {k: v for k, v in last.items() if k != "sig"}
        reading = sign_payload(device.key, {**unsigned, "seq": seq})
        (body,) = anchored_bodies(ledger, stack.home.org_key("bsn-operator"), [[reading]])
        answer = httpx.post(f"{urls[1]}/v1/ingest", json=body, headers=headers, timeout=60)
        codes.append(answer.json()["results"][0]["code"])
        if codes[-1] == "device_suspended":
            break
    ledger.client.close()
    assert codes[-1] == "device_suspended", codes


def _bearer(stack: ProcessStack) -> dict[str, str]:
    """The gateways' organisation's bearer token for road-health."""
    key = stack.home.org_key("bsn-operator")
    token = mint_token(key, org="bsn-operator", audience="roadhealth", ttl_s=600)
    return {"authorization": f"Bearer {token}"}


def _spawn_gateway(stack: ProcessStack, i: int, roadhealth: str, broker: str, city: str) -> None:
    folder = stack.folder
    options = {
        "--data": str(stack.suite),
        "--broker": broker,
        "--roadhealth": roadhealth,
        "--chain": stack.node_url,
        "--outbox": f"sqlite:///{folder / f'outbox-{i}.db'}",
        "--instance": f"gw-{city}-{i}",
        "--group": f"g-{city}",
        "--topic": f"city/{city}/road/+/sensor/+/telemetry/#",
        "--session-expiry": "120",
        "--batch-max": "50",
        "--batch-wait": "0.1",
        "--ready-file": str(folder / f"gateway-{i}.ready"),
    }
    args = ["gateway", "run", *(part for pair in options.items() for part in pair)]
    stack.spawn(f"gateway-{i}", args)  # smartcity gateway run


def _ready_url(stack: ProcessStack, i: int, timeout_s: float = 60) -> str:
    """The health URL a gateway writes into its ready file once it runs."""
    ready = stack.folder / f"gateway-{i}.ready"
    deadline = time.monotonic() + timeout_s
    while not (ready.exists() and ready.read_text()):
        process = stack.procs[f"gateway-{i}"]
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"gateway-{i} did not start:\n{stack.log_tail(f'gateway-{i}')}")
        time.sleep(0.1)
    return ready.read_text()


def _count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM roadhealth_windows")).scalar_one())


def _readings(engine: Any) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT device, seq FROM roadhealth_windows")).all()
    return [(r[0], int(r[1])) for r in rows]


def _anchored_where_stored(engine: Any) -> int:
    """Windows whose stored anchor reference is a batch holding their hash at that leaf."""
    with engine.connect() as conn:
        batches = {
            tx: json.loads(leaves) if isinstance(leaves, str) else leaves
            for tx, leaves in conn.execute(
                text("SELECT anchor_tx, leaves FROM roadhealth_batches")
            ).all()
        }
        windows = conn.execute(
            text("SELECT anchor_tx, leaf_index, hash FROM roadhealth_windows")
        ).all()
    return sum(1 for tx, leaf, digest in windows if batches[tx][leaf] == digest)


def _state(engine: Any) -> dict[str, Any]:
    """What must not depend on which process stored what: each segment's estimate, each
    window's match and each pothole report (condition classes and pothole grouping follow
    the order of arrival by design: docs/operations.md)."""
    with engine.connect() as conn:
        segments = {
            r[0]: tuple(r[1:])
            for r in conn.execute(
                text("SELECT id, iri, iri_lower, iri_upper, windows FROM roadhealth_segments")
            ).all()
        }
        windows = {
            (r[0], int(r[1])): tuple(r[2:])
            for r in conn.execute(
                text(
                    "SELECT device, seq, segment, chainage_m, direction, heading_deg, iri"
                    " FROM roadhealth_windows"
                )
            ).all()
        }
        reports = sorted(
            tuple(r)
            for r in conn.execute(
                text("SELECT message_hash, chainage_m, peak_mps2 FROM roadhealth_pothole_reports")
            ).all()
        )
    return {"segments": segments, "windows": windows, "reports": reports}
