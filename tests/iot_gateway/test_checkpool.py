"""The checks on worker processes answer as they do in process; a dead worker loses nothing;
the buffered MQTT client cuts packets out of its reads intact."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from iot_gateway.checkpool import CheckPool, CheckPoolError, check_jobs, job_for
from iot_gateway.outbox import Incoming
from iot_gateway.simulator import Fleet, build_network
from iot_gateway.source import BrokerAddress, BufferedClient, Delivery, MqttSource, new_client
from iot_gateway.validate import Device, Limits


def _jobs(bad_share: float, n: int) -> list[tuple[str, bytes, str | None, bool]]:
    network = build_network(city="pool", n_devices=4, n_segments=2, seed=3)
    fleet = Fleet(network, bad_share=bad_share, seed=4)
    registered = {d.id: Device(d.id, d.key.public_hex, True) for d in network.devices}
    now = time.time()
    messages = [fleet.next_message(now - 60 + i * 0.1) for i in range(n)]
    return [job_for(m.topic, m.payload, registered.get) for m in messages]


def test_workers_answer_what_the_checks_answer_in_process() -> None:
    jobs = _jobs(bad_share=0.4, n=120)
    now = time.time()
    pool = CheckPool(2, Limits())
    try:
        pool.start()
        answers = pool.check(jobs, now)
    finally:
        pool.close()
    assert answers == check_jobs(jobs, now, Limits(), {})
    stored = [a for a in answers if isinstance(a, Incoming)]
    reasons = {a[0] for a in answers if not isinstance(a, Incoming)}
    # The fleet's bad kinds are refused for their reasons; the good ones become outbox rows
    assert reasons >= {"bad_signature", "unknown_device"}
    assert 40 < len(stored) < 110
    assert all(len(row.hash) == 64 and row.body.startswith(b"{") for row in stored)


def test_a_killed_worker_fails_the_group_and_the_next_check_starts_it_again() -> None:
    jobs = _jobs(bad_share=0.0, n=40)
    now = time.time()
    pool = CheckPool(2, Limits())
    try:
        pool.start()
        first = pool._workers[0]
        assert first is not None
        os.kill(first[0].pid or 0, signal.SIGKILL)
        first[0].join(5)
        with pytest.raises(CheckPoolError, match="a check worker died"):
            pool.check(jobs, now)
        # Nothing was answered for the group, so the gateway acknowledged none of it; the retry
        # gets every message checked by a new worker
        again = pool.check(jobs, now)
    finally:
        pool.close()
    assert len(again) == 40 and all(isinstance(a, Incoming) for a in again)


def test_a_ctrl_c_leaves_the_workers_to_the_gateway(capfd: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C on `make up` reaches every process of the terminal's group: each check worker died
    # printing a KeyboardInterrupt traceback, while the gateway was still closing in order
    jobs = _jobs(bad_share=0.0, n=20)
    now = time.time()
    pool = CheckPool(1, Limits())
    try:
        pool.start()
        worker = pool._workers[0]
        assert worker is not None
        os.kill(worker[0].pid or 0, signal.SIGINT)
        time.sleep(0.5)
        assert worker[0].is_alive()
        answers = pool.check(jobs, now)  # still serving, until the gateway closes its pipe
    finally:
        pool.close()
    assert len(answers) == 20 and all(isinstance(a, Incoming) for a in answers)
    assert worker[0].exitcode == 0
    assert "KeyboardInterrupt" not in capfd.readouterr().err


class TinyReads(BufferedClient):
    # Every packet is cut across several reads (fewer than 100, after which paho leaves a packet
    # it has read whole unhandled until the socket next has data, with or without a buffer)
    READ_BYTES = 97


@pytest.mark.parametrize("client_class", [BufferedClient, TinyReads])
def test_buffered_client_receives_every_message_whole_and_in_order(
    mqtt_url: str, city: str, client_class: type[BufferedClient]
) -> None:
    address = BrokerAddress.parse(mqtt_url)
    topic = f"city/{city}/buffered"
    got: list[bytes] = []
    done = threading.Event()
    subscribed = threading.Event()
    sizes = [1 + (i * 37) % 3000 for i in range(300)]  # bodies of 1..3000 bytes
    receiver = new_client(address, f"buf-{city}", "3.1.1", persistent=False)
    receiver.__class__ = client_class

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        got.append(bytes(message.payload))
        if len(got) == len(sizes):
            done.set()

    receiver.on_message = on_message
    receiver.on_subscribe = lambda *_: subscribed.set()
    receiver.connect(address.host, address.port)
    receiver.loop_start()
    receiver.subscribe(topic, qos=1)
    assert subscribed.wait(10)
    sender = new_client(address, f"buf-pub-{city}", "3.1.1", persistent=False)
    sender.connect(address.host, address.port)
    sender.loop_start()
    sent = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    infos = [sender.publish(topic, body, qos=1) for body in sent]
    for info in infos:
        info.wait_for_publish(10)
    assert done.wait(30), f"received {len(got)} of {len(sent)}"
    sender.disconnect()
    sender.loop_stop()
    receiver.disconnect()
    receiver.loop_stop()
    assert got == sent


def _drain(source: MqttSource, n: int, timeout_s: float = 20) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(source.deliveries.get(timeout=0.2))
        except queue.Empty:
            continue
    return got


def test_acknowledged_in_one_write_are_not_sent_again_and_the_rest_are(
    mqtt_url: str, city: str
) -> None:
    address = BrokerAddress.parse(mqtt_url)
    topic = f"city/{city}/acks"

    def source() -> MqttSource:
        made = MqttSource(address, client_id=f"acks-{city}", topic=topic, group=None)
        made.start()
        assert made.wait_connected(10)
        return made

    first = source()
    time.sleep(0.5)  # the subscription reaches the broker
    sender = new_client(address, f"acks-pub-{city}", "3.1.1", persistent=False)
    sender.connect(address.host, address.port)
    sender.loop_start()
    for info in [sender.publish(topic, b"%d" % i, qos=1) for i in range(40)]:
        info.wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()
    got = _drain(first, 40)
    assert sorted(int(d.payload) for d in got) == list(range(40))
    first.ack([d for d in got if int(d.payload) < 30])
    time.sleep(0.5)  # the acknowledgements reach the broker before the connection ends
    first.stop()
    # The same session again: the broker sends what was not acknowledged, and only that
    again = source()
    try:
        resent = _drain(again, 10)
        assert sorted(int(d.payload) for d in resent) == list(range(30, 40))
        assert _drain(again, 1, timeout_s=1.5) == []
        again.ack(resent)
    finally:
        again.stop()


def test_the_gateways_source_hands_over_topic_and_payload_whole_with_mqtt5_properties(
    mqtt_url: str, city: str
) -> None:
    address = BrokerAddress.parse(mqtt_url)
    topic = f"city/{city}/props"
    source = MqttSource(address, client_id=f"props-{city}", topic=f"{topic}/#", group=None)
    source.start()
    try:
        assert source.wait_connected(10)
        time.sleep(0.5)
        protocol = source.protocol or "3.1.1"
        sender = new_client(address, f"props-pub-{city}", protocol, persistent=False)
        sender.connect(address.host, address.port)
        sender.loop_start()
        sent = [bytes([i]) * (1 + i * 40) for i in range(60)]
        for i, body in enumerate(sent):
            props = None
            if protocol == "5":  # properties of several lengths ahead of the payload
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.UserProperty = [("k", "v" * (i * 7))]
                props.ContentType = "application/json"
            sender.publish(f"{topic}/{i}", body, qos=1, properties=props).wait_for_publish(10)
        sender.disconnect()
        sender.loop_stop()
        got = _drain(source, len(sent))
        source.ack(got)
    finally:
        source.stop()
    assert [(d.topic, d.payload, d.qos) for d in got] == [
        (f"{topic}/{i}", body, 1) for i, body in enumerate(sent)
    ]
