"""A message the checks cannot handle is dead-lettered once, not retried for ever; an answer
the forwarder cannot read is counted, not a crash.

A check worker that raised anything but `Rejected` used to die; the gateway retried the group
with a new worker, which died on the same message, and so on: the whole stream stopped behind
one message. Now such a message goes to the dead-letter topic with a reason, and the rest of
its group is stored."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from iot_gateway.checkpool import check_jobs, job_for
from iot_gateway.forwarder import Forwarder
from iot_gateway.metrics import Metrics
from iot_gateway.outbox import Incoming
from iot_gateway.publisher import connect_publisher
from iot_gateway.simulator import Fleet, build_network
from iot_gateway.validate import Device, Limits
from iot_gateway.wire import telemetry_topic


def test_json_nested_thousands_deep_is_dead_lettered_and_the_stream_goes_on(
    suite: Any,
    mqtt_url: str,
    city: str,
    tmp_path: Path,
    start_gateway: Any,
    collect: Any,
    gw: Any,
) -> None:
    network = build_network(city=city, n_devices=2, n_segments=1, seed=5)
    suite.register(network)
    dlq = collect(f"city/{city}/dlq/#")
    # Two check worker processes: the deep nesting used to kill them on every retry
    settings = gw.settings(suite, mqtt_url, city, tmp_path / "o.db", check_processes=2)
    gateway = start_gateway(settings, suite.ledger)
    publisher = connect_publisher(mqtt_url, f"pub-{city}")
    fleet = Fleet(network, seed=2)
    good = [fleet.next_message(time.time() - 5 + i) for i in range(4)]
    poison = telemetry_topic(city, "seg-000", network.devices[0].id)
    for message in good[:2]:
        publisher.publish(message.topic, message.payload, qos=1)
    publisher.publish(poison, b"[" * 60_000, qos=1).wait_for_publish(5)
    for message in good[2:]:
        publisher.publish(message.topic, message.payload, qos=1).wait_for_publish(5)
    letters = dlq.wait_for(1)
    assert [(letter["reason"], letter["topic"]) for letter in letters] == [("not_json", poison)]
    assert "nested too deeply" in letters[0]["detail"]
    gw.wait_until(lambda: gateway.metrics.total("accepted_total") == 4, what="the good messages")
    assert gateway.is_healthy()


class _FaultyVerifier(Device):
    """A device whose signature check fails with an error of its own (a bug in a check)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verify", _raise)


def _raise(_key: str, _message: bytes, _signature: bytes) -> bool:
    raise ValueError("the verifier broke")


def test_a_check_that_raises_rejects_its_message_with_the_error_and_checks_the_rest() -> None:
    network = build_network(city="poison", n_devices=2, n_segments=1, seed=3)
    fleet = Fleet(network, seed=4)
    now = time.time()
    registered = {d.id: Device(d.id, d.key.public_hex, True) for d in network.devices}
    messages = [fleet.next_message(now - 10 + i) for i in range(6)]
    jobs = [job_for(m.topic, m.payload, registered.get) for m in messages]
    broken = network.devices[0]
    devices: dict[tuple[str, str, bool], Device] = {
        (broken.id, broken.key.public_hex, True): _FaultyVerifier(
            broken.id, broken.key.public_hex, True
        )
    }
    answers = check_jobs(jobs, now, Limits(), devices)
    for message, answer in zip(messages, answers, strict=True):
        if message.device == broken.id:
            assert answer == ("check_failed", "the checks raised ValueError: the verifier broke")
        else:
            assert isinstance(answer, Incoming) and answer.device == message.device


def test_road_healths_answer_with_odd_result_codes_is_tallied_not_a_crash() -> None:
    """The forwarder tallies road health's per-message results; a code or status that is not
    a string (a list, an object) is counted under its text, never stops the forwarder."""
    holder = SimpleNamespace(metrics=Metrics())
    answer = {
        "results": [
            {"status": "rejected", "code": ["a", "list"]},
            {"status": "rejected", "code": {"an": "object"}},
            {"status": ["odd"], "code": None},
            {"status": "stored"},
            {"status": "stored"},
        ]
    }
    Forwarder._count_results(holder, httpx.Response(200, json=answer))  # type: ignore[arg-type]
    metrics = holder.metrics
    assert metrics.value("forward_stored_total") == 2
    assert metrics.value("forward_rejected_total", reason="['a', 'list']") == 1
    assert metrics.value("forward_rejected_total", reason="{'an': 'object'}") == 1
