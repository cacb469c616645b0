"""The broker side: broker restarts, MQTT 3.1.1 subscriptions, the embedded broker's sessions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from iot_gateway.broker import AmqttBroker
from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, build_network
from iot_gateway.source import BrokerAddress, detect_protocol, new_client


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
    assert gateway.source.subscription == f"city/{city}/road/+/sensor/+/telemetry/#"
    fleet = Fleet(network, seed=4)
    publish_fleet(connect_publisher(mqtt_url, f"pub-{city}"), fleet, count=40)
    gw.wait_until(lambda: gateway.metrics.total("messages_forwarded_total") >= 40)


def test_protocol_detection_finds_mqtt_5_on_mosquitto(mqtt_url: str) -> None:
    assert detect_protocol(BrokerAddress.parse(mqtt_url)) in ("5", "3.1.1")


_SUBSCRIBER = """
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

port, topic, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = mqtt.Client(
    CallbackAPIVersion.VERSION2, client_id="kill-me", protocol=mqtt.MQTTv311, clean_session=False
)
client.manual_ack_set(True)  # receives, never acknowledges


def on_connect(c, *_):
    c.subscribe(topic, qos=1)


def on_message(c, _u, m):
    with open(out, "a") as f:
        f.write(m.payload.decode() + "\\n")


client.on_connect = on_connect
client.on_message = on_message
client.connect("127.0.0.1", port)
client.loop_forever()
"""


def test_the_embedded_broker_redelivers_to_a_persistent_session_killed_with_sigkill(
    tmp_path: Path, gw: Any
) -> None:
    """In flight but unacknowledged, or published while it was dead: all sent again on return."""
    broker = AmqttBroker()
    broker.start()
    try:
        topic, received = "t/kill/x", tmp_path / "received.txt"
        received.touch()
        victim = subprocess.Popen(
            [sys.executable, "-c", _SUBSCRIBER, str(broker.port), topic, str(received)]
        )
        publisher = connect_publisher(broker.url, "pub-kill")
        gw.wait_until(lambda: publisher.is_connected(), timeout_s=10, what="publisher")

        def publish(numbers: range) -> None:
            for n in numbers:
                publisher.publish(topic, str(n).encode(), qos=1).wait_for_publish(5)

        # The subscriber gets 0..19 and acknowledges none of them before it is killed
        deadline = time.monotonic() + 10
        while not received.read_text() and time.monotonic() < deadline:
            publish(range(1))  # until the subscription is in place
            time.sleep(0.2)
        publish(range(1, 20))
        gw.wait_until(
            lambda: {int(n) for n in received.read_text().split()} >= set(range(20)),
            what="first delivery",
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        publish(range(20, 40))  # while it is dead

        got: set[int] = set()
        back = new_client(BrokerAddress.parse(broker.url), "kill-me", "3.1.1", persistent=True)
        back.on_message = lambda _c, _u, m: got.add(int(m.payload))
        back.connect("127.0.0.1", broker.port)
        back.loop_start()
        try:
            gw.wait_until(lambda: got >= set(range(40)), timeout_s=20, what="redelivery")
        finally:
            back.loop_stop()
            back.disconnect()
        publisher.loop_stop()
    finally:
        broker.close()
