"""The delivery queue between paho's network thread and the gateway's check stage."""

from __future__ import annotations

import threading

from iot_gateway.source import BrokerAddress, Delivery, MqttSource


def test_the_network_thread_waits_while_the_delivery_queue_is_full() -> None:
    # A broker that ignores the announced receive window (or MQTT 3.1.1, which has none) is
    # held back by the network thread waiting, as with a bounded queue, not by memory
    source = MqttSource(
        BrokerAddress("127.0.0.1", 1), client_id="t", topic="t", group=None, receive_maximum=1000
    )
    for mid in range(1000):
        source._on_delivery("a/b", b"{}", mid, 1)
    late = threading.Thread(target=source._on_delivery, args=("a/b", b"{}", 1000, 1))
    late.start()
    late.join(0.3)
    assert late.is_alive() and source.deliveries.qsize() == 1000
    first = source.deliveries.get(timeout=1)
    late.join(5)
    assert not late.is_alive() and source.deliveries.qsize() == 1000
    assert isinstance(first, Delivery) and (first.topic, first.payload, first.mid) == (
        "a/b",
        b"{}",
        0,
    )
