"""Signed telemetry from the simulator through the broker and the gateway into road-health."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx

from chain import merkle
from chain.auth import mint_token
from chain.client import ChainClient, Identity
from chain.encoding import canonical, sha256
from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import BAD_KINDS, Fleet, build_network
from iot_gateway.wire import encode_cbor, sign_payload, telemetry_topic
from services.common.ledger import RemoteLedger


def test_good_and_bad_messages_end_in_road_health_and_the_dead_letter_topic(
    suite: Any,
    mqtt_url: str,
    city: str,
    tmp_path: Path,
    start_gateway: Any,
    collect: Any,
    gw: Any,
) -> None:
    network = build_network(city=city, n_devices=4, n_segments=3, seed=7)
    suite.register(network)
    dlq = collect(f"city/{city}/dlq/#")
    gateway = start_gateway(
        gw.settings(suite, mqtt_url, city, tmp_path / "outbox.db"), suite.ledger
    )
    fleet = Fleet(network, bad_share=0.25, seed=3)
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    report = publish_fleet(publisher, fleet, count=240)
    bad_total = sum(report.bad.values())
    assert set(report.bad) == set(BAD_KINDS)

    # Every bad message is dead-lettered with the reason of its fault
    letters = dlq.wait_for(bad_total)
    reasons: dict[str, int] = {}
    for letter in letters:
        reasons[letter["reason"]] = reasons.get(letter["reason"], 0) + 1
        assert letter["topic"].startswith(f"city/{city}/road/")
        assert letter["client_id"] == gateway.settings.instance
        assert base64.b64decode(letter["payload_b64"])
    expected = {
        "bad_signature": "bad_signature",
        "unknown_device": "unknown_device",
        "replayed_seq": "replayed_seq",
        "malformed": "not_json",
    }
    assert reasons == {expected[k]: n for k, n in report.bad.items()}

    # Every good message is stored once, anchored and forwarded
    gw.wait_until(
        lambda: gateway.metrics.total("messages_forwarded_total") >= report.good, what="forwarding"
    )
    stored = gateway.outbox.stored_messages()
    assert sorted((d, s) for d, s, _ in stored) == sorted(fleet.sent_good)
    assert gateway.metrics.total("forward_stored_total") == report.good
    assert gateway.outbox.sequence_gaps() == 0

    # Road-health holds each reading with a proof from device signature to a committed block
    device, seq = fleet.sent_good[-1]
    token = mint_token(suite.road_key, org="road-authority", audience="roadhealth")
    proof = httpx.get(
        f"{suite.roadhealth_url}/v1/readings/{device}/{seq}/proof",
        headers={"authorization": f"Bearer {token}"},
    )
    assert proof.status_code == 200, proof.text

    # Health and metrics say the same
    assert gateway.health is not None
    health = httpx.get(f"{gateway.health.url}/healthz").json()
    assert health["status"] == "ok"
    assert health["accepted"] == report.good
    # Shared under MQTT 5 (Mosquitto); plain under 3.1.1 (the embedded amqtt broker)
    plain = f"city/{city}/road/+/sensor/+/telemetry/#"
    shared = f"$share/g-{city}/{plain}"
    assert health["mqtt"]["protocol"] in ("5", "3.1.1")
    assert health["mqtt"]["subscription"] == (
        shared if health["mqtt"]["protocol"] == "5" else plain
    )
    metrics = httpx.get(f"{gateway.health.url}/metrics").text
    assert f"iot_gateway_accepted_total {report.good}" in metrics
    assert 'iot_gateway_rejected_total{reason="bad_signature"}' in metrics
    for name in ("queue_depth", "anchor_lag_seconds", "forward_latency_seconds_count"):
        assert f"iot_gateway_{name}" in metrics


def test_batches_are_anchored_by_the_merkle_root_of_their_message_hashes(
    suite: Any,
    mqtt_url: str,
    city: str,
    tmp_path: Path,
    start_gateway: Any,
    gw: Any,
) -> None:
    network = build_network(city=city, n_devices=2, n_segments=2, seed=8)
    suite.register(network)
    gateway = start_gateway(gw.settings(suite, mqtt_url, city, tmp_path / "o.db"), suite.ledger)
    fleet = Fleet(network, seed=1)
    publish_fleet(connect_publisher(mqtt_url, f"pub-{city}"), fleet, count=30)
    gw.wait_until(lambda: gateway.metrics.total("messages_forwarded_total") >= 30)
    from sqlalchemy import select

    from iot_gateway.outbox import batches, messages

    with gateway.outbox.engine.connect() as conn:
        for batch in conn.execute(select(batches)).all():
            rows = conn.execute(
                select(messages.c.payload, messages.c.hash)
                .where(messages.c.batch_id == batch.id)
                .order_by(messages.c.leaf_index)
            ).all()
            hashes = [bytes.fromhex(r.hash) for r in rows]
            assert all(
                sha256(canonical(json.loads(r.payload))) == h
                for r, h in zip(rows, hashes, strict=True)
            )
            assert merkle.root(hashes).hex() == batch.root
            anchored = suite.ledger.read("anchors", f"batch:{batch.anchor_tx}")
            assert anchored["root"] == batch.root and anchored["count"] == len(rows)


def _signed(network: Any, device_index: int, seq: int, **changes: Any) -> tuple[str, bytes]:
    device = network.devices[device_index]
    body = {
        "device": device.id,
        "seq": seq,
        "t0": time.time(),
        "rate_hz": 50,
        "lat": 22.5,
        "lon": 114.0,
        "speed_mps": 12.0,
        "acc_z": [9.81] * 50,
    }
    body.update(changes)
    topic = telemetry_topic(network.city, network.segments[0].id, device.id)
    return topic, canonical(sign_payload(device.key, body))


def test_each_check_dead_letters_with_its_reason_and_the_gateway_keeps_going(
    suite: Any,
    mqtt_url: str,
    city: str,
    tmp_path: Path,
    start_gateway: Any,
    collect: Any,
    gw: Any,
) -> None:
    network = build_network(city=city, n_devices=3, n_segments=1, seed=9)
    suite.register(network)
    suite.suspend(network.devices[2].id)
    dlq = collect(f"city/{city}/dlq/#")
    gateway = start_gateway(gw.settings(suite, mqtt_url, city, tmp_path / "o.db"), suite.ledger)
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    topic, good = _signed(network, 0, 1)
    other_topic = telemetry_topic(city, "seg-000", network.devices[1].id)
    cases = [
        ("too_large", topic, b"{" + b" " * 70_000 + b"}"),
        ("not_json", topic, b"\xff\xfe not json"),
        ("bad_schema", topic, json.dumps({"device": network.devices[0].id}).encode()),
        ("topic_mismatch", other_topic, good),
        ("device_suspended", *_signed(network, 2, 1)),
        ("clock_skew", *_signed(network, 0, 2, t0=time.time() + 3600)),
        ("out_of_range", *_signed(network, 0, 3, speed_mps=400.0)),
        ("out_of_range", *_signed(network, 0, 4, acc_z=[9.81] * 5)),
        ("accepted", topic, good),
        ("duplicate", topic, good),
        ("replayed_seq", *_signed(network, 0, 1, speed_mps=13.0)),
        ("accepted", *_signed(network, 0, 5)),
    ]
    for _, t, payload in cases:
        publisher.publish(t, payload, qos=1).wait_for_publish(5)
    rejects = [c for c, _, _ in cases if c not in ("accepted", "duplicate")]
    letters = dlq.wait_for(len(rejects))
    assert [letter["reason"] for letter in letters] == rejects
    gw.wait_until(lambda: gateway.metrics.total("accepted_total") == 2)
    assert gateway.metrics.total("duplicates_total") == 1
    assert gateway.outbox.sequence_gaps() == 3  # seq 2, 3 and 4 of device 0 never arrived
    assert gateway.is_healthy()


def test_a_cbor_message_is_stored_as_its_json_twin_and_malformed_cbor_is_dead_lettered(
    suite: Any,
    mqtt_url: str,
    city: str,
    tmp_path: Path,
    start_gateway: Any,
    collect: Any,
    gw: Any,
) -> None:
    network = build_network(city=city, n_devices=1, n_segments=1, seed=10)
    suite.register(network)
    dlq = collect(f"city/{city}/dlq/#")
    gateway = start_gateway(gw.settings(suite, mqtt_url, city, tmp_path / "o.db"), suite.ledger)
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    topic, json_bytes = _signed(network, 0, 1, speed_mps=12.25, acc_z=[9.81, 9.0] * 25)
    signed = json.loads(json_bytes)
    cbor_topic = f"{topic}/cbor"
    publisher.publish(cbor_topic, encode_cbor(signed), qos=1).wait_for_publish(5)
    publisher.publish(cbor_topic, encode_cbor(signed)[:-3], qos=1).wait_for_publish(5)
    # The same message in JSON afterwards is the same message: a redelivery, not a replay
    publisher.publish(topic, json_bytes, qos=1).wait_for_publish(5)

    letters = dlq.wait_for(1)
    assert [(x["reason"], x["topic"]) for x in letters] == [("not_cbor", cbor_topic)]
    assert "invalid CBOR" in letters[0]["detail"]
    gw.wait_until(lambda: gateway.metrics.total("duplicates_total") == 1, what="the JSON twin")
    gw.wait_until(lambda: gateway.metrics.total("forward_stored_total") == 1, what="forwarding")
    assert gateway.metrics.total("accepted_total") == 1
    # Stored under the plain topic, as the canonical JSON the device signed, with its hash
    from sqlalchemy import select

    from iot_gateway.outbox import messages

    with gateway.outbox.engine.connect() as conn:
        row = conn.execute(select(messages.c.topic, messages.c.payload, messages.c.hash)).one()
    assert row.topic == topic
    assert row.payload.encode() == json_bytes == canonical(signed)
    assert row.hash == sha256(json_bytes).hex()
    token = mint_token(suite.road_key, org="road-authority", audience="roadhealth")
    proof = httpx.get(
        f"{suite.roadhealth_url}/v1/readings/{network.devices[0].id}/1/proof",
        headers={"authorization": f"Bearer {token}"},
    )
    assert proof.status_code == 200, proof.text
    assert proof.json()["payload"] == signed


def test_over_http_the_gateway_sees_a_suspension_by_the_chains_events_not_by_polling(
    suite: Any,
    mqtt_url: str,
    city: str,
    tmp_path: Path,
    start_gateway: Any,
    collect: Any,
    gw: Any,
) -> None:
    network = build_network(city=city, n_devices=2, n_segments=1, seed=9)
    suite.register(network)
    client = ChainClient(
        f"{suite.url}/chain", identity=Identity("bsn-operator", suite.operator_key)
    )
    ledger = RemoteLedger(client, suite.ledger.genesis)
    # An hour's ttl: only the event stream can tell the gateway of the suspension in time
    settings = gw.settings(suite, mqtt_url, city, tmp_path / "o.db", registry_ttl_s=3600.0)
    gateway = start_gateway(settings, ledger)
    dlq = collect(f"city/{city}/dlq/#")
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    publisher.publish(*_signed(network, 0, 1), qos=1).wait_for_publish(5)
    gw.wait_until(lambda: gateway.metrics.total("accepted_total") == 1)
    gw.wait_until(gateway.registry.following.is_set, what="the registry to follow the chain")
    suite.suspend(network.devices[0].id)
    # the block with the suspension reaches the gateway over the event stream (a moment after
    # its commit); with an hour's ttl nothing else could make the cached answer change
    seen = gateway.registry.lookup
    gw.wait_until(lambda: not seen(network.devices[0].id).active, what="the suspension event")
    publisher.publish(*_signed(network, 0, 2), qos=1).wait_for_publish(5)
    publisher.publish(*_signed(network, 1, 1), qos=1).wait_for_publish(5)
    letters = dlq.wait_for(1)
    assert [letter["reason"] for letter in letters] == ["device_suspended"]
    gw.wait_until(lambda: gateway.metrics.total("accepted_total") == 2)  # device 1 unaffected
