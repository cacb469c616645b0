"""The wire contract: telemetry topics, the signed payload, its hash and its signature."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chain.crypto import SigningKey
from chain.encoding import b64url, canonical, sha256

TELEMETRY_QOS = 1
TOPIC_PATTERN = "city/+/road/+/sensor/+/telemetry"
PAYLOAD_FIELDS = frozenset(
    {"device", "seq", "t0", "rate_hz", "lat", "lon", "speed_mps", "acc_z", "sig"}
)
# A topic level: letters, digits and - _ . (no MQTT wildcards, no separators, no spaces)
_LEVEL = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_TOPIC = re.compile(rf"city/({_LEVEL})/road/({_LEVEL})/sensor/({_LEVEL})/telemetry")
ID_PATTERN = re.compile(_LEVEL)


@dataclass(frozen=True)
class TelemetryTopic:
    """The three names a telemetry topic carries."""

    city: str
    segment: str
    device: str

    def __str__(self) -> str:
        return telemetry_topic(self.city, self.segment, self.device)


def telemetry_topic(city: str, segment: str, device: str) -> str:
    """city/{city}/road/{segment}/sensor/{device}/telemetry."""
    return f"city/{city}/road/{segment}/sensor/{device}/telemetry"


def dlq_topic(city: str, device: str) -> str:
    """city/{city}/dlq/{device}: where the gateway publishes rejects."""
    return f"city/{city}/dlq/{device}"


def parse_topic(topic: str) -> TelemetryTopic | None:
    """The city, segment and device of a telemetry topic, or None if it is not one."""
    match = _TOPIC.fullmatch(topic)
    if match is None:
        return None
    return TelemetryTopic(match.group(1), match.group(2), match.group(3))


def is_valid_id(value: str) -> bool:
    """A device, segment or city name usable as one topic level."""
    return ID_PATTERN.fullmatch(value) is not None


def signing_bytes(payload: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the payload without its signature: what the device signs."""
    return canonical({k: v for k, v in payload.items() if k != "sig"})


def sign_payload(key: SigningKey, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with `sig` set to the base64url Ed25519 signature of its signing bytes."""
    body = {k: v for k, v in payload.items() if k != "sig"}
    return {**body, "sig": b64url(key.sign(canonical(body)))}


def message_hash(payload: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical JSON of the whole payload, signature included: the Merkle leaf."""
    return sha256(canonical(payload))
