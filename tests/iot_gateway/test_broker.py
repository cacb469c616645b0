"""The broker side: reconnecting after a broker restart, MQTT 3.1.1 plain subscriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, build_network
from iot_gateway.source import BrokerAddress, detect_protocol


def test_the_gateway_reconnects_by_itself_after_the_broker_restarts(
    suite: Any, city: str, tmp_path: Path, start_gateway: Any, gw: Any, private_broker: Any
) -> None:
    broker = private_broker
    network = build_network(city=city, n_devices=3, n_segments=2, seed=12)
    suite.register(network)
    gateway = start_gateway(gw.settings(suite, broker.url, city, tmp_path / "o.db"), suite.ledger)
    fleet = Fleet(network, seed=2)
    publisher = connect_publisher(broker.url, f"pub-{city}")
    publish_fleet(publisher, fleet, count=60)
    gw.wait_until(lambda: gateway.metrics.total("accepted_total") == 60)
    publisher.loop_stop()

    broker.stop()
    gw.wait_until(lambda: not gateway.source.connected.is_set(), what="disconnect")
    assert not gateway.is_healthy()
    broker.start()
    gw.wait_until(gateway.source.connected.is_set, timeout_s=20, what="reconnect")

    publisher = connect_publisher(broker.url, f"pub2-{city}")
    publish_fleet(publisher, fleet, count=60)
    gw.wait_until(lambda: gateway.metrics.total("messages_forwarded_total") >= 120)
    assert sorted((d, s) for d, s, _ in gateway.outbox.stored_messages()) == sorted(fleet.sent_good)
    assert gateway.source.connects >= 2
    publisher.loop_stop()


def test_against_an_mqtt_3_1_1_connection_the_gateway_subscribes_plainly(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, start_gateway: Any, gw: Any
) -> None:
    network = build_network(city=city, n_devices=2, n_segments=1, seed=13)
    suite.register(network)
    gateway = start_gateway(
        gw.settings(suite, mqtt_url, city, tmp_path / "o.db", protocol="3.1.1"), suite.ledger
    )
    assert gateway.source.subscription == f"city/{city}/road/+/sensor/+/telemetry"
    fleet = Fleet(network, seed=4)
    publish_fleet(connect_publisher(mqtt_url, f"pub-{city}"), fleet, count=40)
    gw.wait_until(lambda: gateway.metrics.total("messages_forwarded_total") >= 40)


def test_protocol_detection_finds_mqtt_5_on_mosquitto(mqtt_url: str) -> None:
    assert detect_protocol(BrokerAddress.parse(mqtt_url)) in ("5", "3.1.1")
