"""Publish a fleet's messages to a broker at a chosen rate, QoS 1, and count what went out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from iot_gateway.errors import BrokerError
from iot_gateway.simulator import Fleet
from iot_gateway.source import BrokerAddress, new_client
from iot_gateway.wire import TELEMETRY_QOS


@dataclass
class PublishReport:
    sent: int = 0
    good: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    publish_times: dict[tuple[str, int], float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        rate = self.sent / self.seconds if self.seconds else 0.0
        return {
            "sent": self.sent,
            "good": self.good,
            "bad": self.bad,
            "seconds": round(self.seconds, 3),
            "rate_per_s": round(rate, 1),
        }


def connect_publisher(broker_url: str, client_id: str) -> mqtt.Client:
    address = BrokerAddress.parse(broker_url)
    client = new_client(address, client_id, "3.1.1", persistent=False)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        raise BrokerError(f"cannot reach the broker at {broker_url}: {exc}") from exc
    client.loop_start()
    return client


def publish_fleet(
    client: mqtt.Client,
    fleet: Fleet,
    *,
    count: int | None = None,
    duration_s: float | None = None,
    rate_per_s: float | None = None,
    record_times: bool = False,
) -> PublishReport:
    """Publish until `count` messages or `duration_s` seconds, paced at rate_per_s if given."""
    if count is None and duration_s is None:
        raise ValueError("give a count or a duration")
    report = PublishReport()
    started = time.monotonic()
    infos: list[mqtt.MQTTMessageInfo] = []
    while True:
        elapsed = time.monotonic() - started
        if (count is not None and report.sent >= count) or (
            duration_s is not None and elapsed >= duration_s
        ):
            break
        if rate_per_s:
            ahead = report.sent / rate_per_s - elapsed
            if ahead > 0:
                time.sleep(min(ahead, 0.05))
                continue
        message = fleet.next_message(time.time())
        if record_times and message.bad is None and message.seq is not None:
            report.publish_times[(message.device, message.seq)] = time.time()
        infos.append(client.publish(message.topic, message.payload, qos=TELEMETRY_QOS))
        report.sent += 1
        if message.bad is None:
            report.good += 1
        else:
            report.bad[message.bad] = report.bad.get(message.bad, 0) + 1
        if len(infos) >= 2000:
            _confirm(infos)
    _confirm(infos)
    report.seconds = time.monotonic() - started
    return report


def _confirm(infos: list[mqtt.MQTTMessageInfo]) -> None:
    for info in infos:
        info.wait_for_publish(30)
        if not info.is_published():
            raise BrokerError("the broker did not acknowledge a QoS 1 publish within 30 s")
    infos.clear()
