"""The wire contract: telemetry topics, the signed payload, its hash, its encodings (JSON, CBOR)."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import cbor2

from chain.crypto import SigningKey
from chain.encoding import b64url, canonical, from_b64url, sha256
from chain.errors import EncodingError

TELEMETRY_QOS = 1
# `telemetry/#` matches `.../telemetry` itself and the encoding suffix `.../telemetry/cbor`
TOPIC_PATTERN = "city/+/road/+/sensor/+/telemetry/#"
PAYLOAD_FIELDS = frozenset(
    {"device", "seq", "t0", "rate_hz", "lat", "lon", "speed_mps", "acc_z", "sig"}
)
Encoding = Literal["json", "cbor"]
ENCODINGS: tuple[Encoding, ...] = ("json", "cbor")
# A topic level: letters, digits and - _ . (no MQTT wildcards, no separators, no spaces)
_LEVEL = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_TOPIC = re.compile(rf"city/({_LEVEL})/road/({_LEVEL})/sensor/({_LEVEL})/telemetry(/cbor)?")
ID_PATTERN = re.compile(_LEVEL)


@dataclass(frozen=True)
class TelemetryTopic:
    """The three names a telemetry topic carries, and the encoding its suffix asks for."""

    city: str
    segment: str
    device: str
    encoding: Encoding = "json"

    def __str__(self) -> str:
        """The plain (JSON) topic: what is stored and forwarded whatever the encoding."""
        return telemetry_topic(self.city, self.segment, self.device)


def telemetry_topic(city: str, segment: str, device: str, encoding: Encoding = "json") -> str:
    """city/{city}/road/{segment}/sensor/{device}/telemetry, with `/cbor` for CBOR."""
    plain = f"city/{city}/road/{segment}/sensor/{device}/telemetry"
    return plain if encoding == "json" else f"{plain}/{encoding}"


def telemetry_filter(city: str) -> str:
    """The subscription filter for every telemetry topic of one city, in every encoding."""
    return f"city/{city}/road/+/sensor/+/telemetry/#"


def dlq_topic(city: str, device: str) -> str:
    """city/{city}/dlq/{device}: where the gateway publishes rejects."""
    return f"city/{city}/dlq/{device}"


def parse_topic(topic: str) -> TelemetryTopic | None:
    """The city, segment, device and encoding of a telemetry topic, or None if it is not one."""
    match = _TOPIC.fullmatch(topic)
    if match is None:
        return None
    encoding: Encoding = "cbor" if match.group(4) else "json"
    return TelemetryTopic(match.group(1), match.group(2), match.group(3), encoding)


def is_valid_id(value: str) -> bool:
    """A device, segment or city name usable as one topic level."""
    return ID_PATTERN.fullmatch(value) is not None


# --- canonical JSON ---------------------------------------------------------------------------

# RFC 8785: chain.encoding.canonical writes floats with the C encoder whenever that is exact
canonical_json = canonical


def canonical_pair(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """Canonical JSON of the payload without `sig` (what is signed) and with it (what is
    hashed, stored and forwarded)."""
    return canonical({k: v for k, v in payload.items() if k != "sig"}), canonical(payload)


def signing_bytes(payload: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the payload without its signature: what the device signs."""
    return canonical_json({k: v for k, v in payload.items() if k != "sig"})


def sign_payload(key: SigningKey, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with `sig` set to the base64url Ed25519 signature of its signing bytes."""
    body = {k: v for k, v in payload.items() if k != "sig"}
    return {**body, "sig": b64url(key.sign(canonical_json(body)))}


def message_hash(payload: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical JSON of the whole payload, signature included: the Merkle leaf."""
    return sha256(canonical_json(payload))


# --- CBOR ---------------------------------------------------------------------------------------


class CborInvalid(ValueError):
    """Bytes that are not one well-formed CBOR item of JSON-compatible values."""


def encode_cbor(payload: dict[str, Any]) -> bytes:
    """The compact binary form of a signed payload: floats as IEEE 754 doubles, `sig` as bytes.

    The signature is the one over the canonical JSON: the encoding changes nothing signed.
    """
    body = {k: v for k, v in payload.items() if k != "sig"}
    if "sig" in payload:
        body["sig"] = _b64url_bytes(payload["sig"])
    return cbor2.dumps(body)


def decode_cbor(raw: bytes) -> Any:
    """The payload in CBOR bytes, `sig` back to base64url text; CborInvalid when malformed."""
    stream = io.BytesIO(raw)
    try:
        value = cbor2.CBORDecoder(stream, allow_duplicate_keys=False).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise CborInvalid(f"invalid CBOR: {exc}") from exc
    if stream.tell() != len(raw):
        raise CborInvalid(f"{len(raw) - stream.tell()} trailing byte(s) after the CBOR item")
    _check_finite(value)
    if isinstance(value, dict) and isinstance(value.get("sig"), bytes):
        value["sig"] = b64url(value["sig"])
    return value


def _check_finite(value: Any) -> None:
    """NaN and infinities have no JSON form, so a CBOR payload may not carry them either."""
    if isinstance(value, float) and not math.isfinite(value):
        raise CborInvalid("NaN and Infinity are not allowed")
    if isinstance(value, list):
        for item in value:
            _check_finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            _check_finite(item)


def _b64url_bytes(sig: Any) -> Any:
    """The raw bytes of a base64url signature (anything else is kept, to be refused later)."""
    try:
        return from_b64url(sig, field="sig") if isinstance(sig, str) else sig
    except EncodingError:
        return sig
