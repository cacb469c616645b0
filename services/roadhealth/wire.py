"""The telemetry wire format shared with the gateway: payload checks, signatures, hashes, roots.

Used by the ingestion endpoint and by anyone building batches (tests, the simulator, benches).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain import merkle
from chain.crypto import SigningKey, verify
from chain.encoding import b64url, canonical, from_b64url
from chain.errors import EncodingError

DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOPIC = re.compile(r"city/([^/+#]+)/road/([^/+#]+)/sensor/([^/+#]+)/telemetry")
PAYLOAD_FIELDS = frozenset(
    {"device", "seq", "t0", "rate_hz", "lat", "lon", "speed_mps", "acc_z", "sig"}
)
MAX_SEQ = 2**53 - 1
T0_RANGE = (946_684_800.0, 4_102_444_800.0)
RATE_RANGE = (1, 1000)
SPEED_RANGE = (0.0, 70.0)
SAMPLES_RANGE = (16, 4096)
ACC_LIMIT_MPS2 = 160.0


class PayloadInvalid(ValueError):
    """A payload outside the wire contract; `code` is the reason code the gateway sees."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Telemetry:
    """A checked payload's fields."""

    device: str
    seq: int
    t0: float
    rate_hz: int
    lat: float
    lon: float
    speed_mps: float
    acc_z: tuple[float, ...]
    sig: str


def message_hash(payload: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the full payload (signature included)."""
    return hashlib.sha256(canonical(payload)).hexdigest()


def signing_bytes(payload: dict[str, Any]) -> bytes:
    """What the device signs: the canonical JSON of the payload without `sig`."""
    return canonical({k: v for k, v in payload.items() if k != "sig"})


def sign_payload(key: SigningKey, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its `sig` (base64url Ed25519 over the canonical unsigned payload)."""
    return {**payload, "sig": b64url(key.sign(signing_bytes(payload)))}


def batch_root(hashes: Sequence[str]) -> str:
    """RFC 6962 root over the 32-byte message hashes, in order."""
    return merkle.root([bytes.fromhex(h) for h in hashes]).hex()


def audit_path(hashes: Sequence[str], index: int) -> list[str]:
    """Audit path of leaf `index` among the batch's message hashes."""
    leaf_hashes = [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes]
    return [p.hex() for p in merkle.audit_path(leaf_hashes, index)]


def has_valid_signature(payload: dict[str, Any], pub_key: str) -> bool:
    """True when `sig` verifies over the unsigned payload with the device's key."""
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        raw = from_b64url(sig, field="sig")
    except EncodingError:
        return False
    return len(raw) == 64 and verify(pub_key, signing_bytes(payload), raw)


def topic_device(topic: str) -> str | None:
    """The `{device}` level of a telemetry topic, or None when the topic is not one."""
    found = TOPIC.fullmatch(topic)
    return None if found is None else found.group(3)


def parse_payload(payload: dict[str, Any]) -> Telemetry:
    """Check members, types and physical ranges; PayloadInvalid says which rule failed."""
    # Verify exactly the nine members are present
    if set(payload) != PAYLOAD_FIELDS:
        missing, extra = PAYLOAD_FIELDS - set(payload), set(payload) - PAYLOAD_FIELDS
        raise PayloadInvalid(
            "payload_invalid", f"missing members {sorted(missing)}, unknown {sorted(extra)}"
        )
    device, sig = payload["device"], payload["sig"]
    if not isinstance(device, str) or not DEVICE_ID.fullmatch(device):
        raise PayloadInvalid("payload_invalid", f"device must match {DEVICE_ID.pattern}")
    if not isinstance(sig, str):
        raise PayloadInvalid("payload_invalid", "sig must be a base64url string")
    seq = _integer(payload, "seq", 0, MAX_SEQ)
    rate = _integer(payload, "rate_hz", *RATE_RANGE)
    t0 = _number(payload, "t0", *T0_RANGE)
    lat = _number(payload, "lat", -90.0, 90.0)
    lon = _number(payload, "lon", -180.0, 180.0)
    speed = _number(payload, "speed_mps", *SPEED_RANGE)
    acc = payload["acc_z"]
    if not isinstance(acc, list) or not SAMPLES_RANGE[0] <= len(acc) <= SAMPLES_RANGE[1]:
        raise PayloadInvalid(
            "payload_invalid", f"acc_z must be a list of {SAMPLES_RANGE[0]}..{SAMPLES_RANGE[1]}"
        )
    for value in acc:
        if not _is_number(value) or not -ACC_LIMIT_MPS2 <= value <= ACC_LIMIT_MPS2:
            raise PayloadInvalid(
                "payload_invalid", f"acc_z values must be numbers within ±{ACC_LIMIT_MPS2} m/s²"
            )
    return Telemetry(device, seq, t0, rate, lat, lon, speed, tuple(float(v) for v in acc), sig)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(payload: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = payload[name]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise PayloadInvalid("payload_invalid", f"{name} must be an integer in {lo}..{hi}")
    return value


def _number(payload: dict[str, Any], name: str, lo: float, hi: float) -> float:
    value = payload[name]
    if not _is_number(value) or not lo <= value <= hi:
        raise PayloadInvalid("payload_invalid", f"{name} must be a number in {lo:g}..{hi:g}")
    return float(value)
