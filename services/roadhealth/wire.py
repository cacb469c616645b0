"""The telemetry wire contract, once: topics, the signed payload, its hash, encodings, batch roots.

This module owns the format (docs/telemetry.md). The IoT gateway imports it (through
`iot_gateway.wire`, which re-exports it) and so does the road-health ingestion endpoint; it sits
in `services/roadhealth` because imports point down (`chain` <- `services` <- `iot_gateway` <-
`smartcity`) and both sides may import it from here.

Choices where the two copies this replaces had drifted:

- Topics: one pattern, `city/{city}/road/{segment}/sensor/{device}/telemetry` with an optional
  `/cbor` suffix naming the encoding; every level a name of `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
  Road health used to accept any level without `/`, `+`, `#` and no `/cbor` suffix; a level
  outside the pattern could never come from the gateway, and a device outside it was already
  refused by the payload check.
- `message_hash` is hex text, as it travels everywhere (the gateway's outbox and batches, the
  ingestion API, the database, anchor records); the gateway's copy returned raw bytes and had no
  caller. `batch_root` and `audit_path` take the hex hashes.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cbor2
import orjson

from chain import merkle
from chain.crypto import verify
from chain.encoding import SAFE_INT, b64url, canonical, from_b64url, sha256, writes_plainly
from chain.errors import EncodingError
from chain.suites import SuiteKey, suite_for
from services.roadhealth.errors import WireError

TELEMETRY_QOS = 1
# `telemetry/#` matches `.../telemetry` itself and the encoding suffix `.../telemetry/cbor`
TOPIC_PATTERN = "city/+/road/+/sensor/+/telemetry/#"
PAYLOAD_FIELDS = frozenset(
    {"device", "seq", "t0", "rate_hz", "lat", "lon", "speed_mps", "acc_z", "sig"}
)
Encoding = Literal["json", "cbor"]
ENCODINGS: tuple[Encoding, ...] = ("json", "cbor")
# A topic level: letters, digits and - _ . (no MQTT wildcards, no separators, no spaces)
_LEVEL = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"  # as the contract's DEVICE_ID
_TOPIC = re.compile(rf"city/({_LEVEL})/road/({_LEVEL})/sensor/({_LEVEL})/telemetry(/cbor)?")
ID_PATTERN = re.compile(_LEVEL)
DEVICE_ID = ID_PATTERN

# The contract's ranges; the gateway's Limits default to them
MAX_SEQ = 2**53 - 1
T0_RANGE = (946_684_800.0, 4_102_444_800.0)  # 2000-01-01 .. 2100-01-01
RATE_RANGE = (1, 1000)
SPEED_RANGE = (0.0, 70.0)  # m/s, 252 km/h
SAMPLES_RANGE = (16, 4096)
ACC_LIMIT_MPS2 = 160.0  # 16 g: the range of a common MEMS accelerometer


# --- topics -------------------------------------------------------------------------------------


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


def topic_device(topic: str) -> str | None:
    """The `{device}` level of a telemetry topic, or None when the topic is not one."""
    parsed = parse_topic(topic)
    return None if parsed is None else parsed.device


def is_valid_id(value: str) -> bool:
    """A device, segment or city name usable as one topic level."""
    return ID_PATTERN.fullmatch(value) is not None


# --- canonical JSON, signatures, hashes ---------------------------------------------------------

# RFC 8785: chain.encoding.canonical writes floats with the C encoder whenever that is exact
canonical_json = canonical


def canonical_pair(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """Canonical JSON of the payload without `sig` (what is signed) and with it (what is
    hashed, stored and forwarded).

    The payload is encoded once: in canonical JSON the members of an object are written in
    key order, each nested value in its own canonical form, so removing the `"sig":...` member
    (and one comma) from the whole gives exactly the canonical form of the rest. When the
    member's bytes occur more than once (a nested object with the same `sig`), both are
    encoded in full. A payload of the contract's shape is encoded by orjson (sorted_body)."""
    body = sorted_body(payload)
    if body is None:
        body = canonical(payload)
    return unsigned_part(payload, body), body


def unsigned_part(payload: dict[str, Any], body: bytes) -> bytes:
    """Canonical JSON of the payload without `sig`, cut from `body`, its canonical JSON
    (canonical_pair)."""
    if "sig" not in payload:
        return body
    member = b'"sig":' + canonical(payload["sig"])
    at = body.find(member)
    if at > 0 and body.count(member) == 1:
        end = at + len(member)
        if body[at - 1 : at] == b"{" and body[end : end + 1] == b"}":
            return b"{}"
        if body[at - 1 : at] == b",":
            return body[: at - 1] + body[end:]
        if body[end : end + 1] == b",":
            return body[:at] + body[end + 1 :]
    return canonical({k: v for k, v in payload.items() if k != "sig"})


_ACC_START = b'{"acc_z":['  # the first member of a payload in canonical order
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_.=-]*")  # written alike by every JSON encoder
_SCALARS = ("lat", "lon", "rate_hz", "seq", "speed_mps", "t0")


def sorted_body(payload: dict[str, Any]) -> bytes | None:
    """The RFC 8785 bytes of a payload with the contract's nine members, from orjson (sorted
    keys; a quarter of the cost of the general encoder on a 50-sample window), or None when
    the payload is not of that shape or orjson may write some part of it otherwise.

    With the nine ASCII keys, sorted by code point is RFC 8785's order; `device` and `sig` of
    letters, digits and `_.=-` need no escaping; each scalar an int or float that the C
    encoder writes as RFC 8785 does (`writes_plainly`), which orjson writes alike (shortest
    round-trip digits). In `acc_z` only ints and floats are let through, and orjson's bytes
    are read for what it writes its own way: an exponent (`e`), an integral float's `.0`,
    NaN and infinities as `null` (`n`); an int past 2^53 by the list's extremes."""
    if payload.keys() != PAYLOAD_FIELDS:
        return None
    acc, device, sig = payload["acc_z"], payload["device"], payload["sig"]
    if type(acc) is not list or type(device) is not str or type(sig) is not str:
        return None
    if not (_PLAIN_TEXT.fullmatch(device) and _PLAIN_TEXT.fullmatch(sig)):
        return None
    for name in _SCALARS:
        value = payload[name]
        if (type(value) is not int and type(value) is not float) or not writes_plainly(value):
            return None
    if not _ACC_TYPES.issuperset(map(type, acc)):
        return None
    try:
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson's JSONEncodeError: an int past 64 bits
        return None
    numbers = body[len(_ACC_START) : body.index(b"]")]
    if b"e" in numbers or b"n" in numbers or b".0," in numbers or numbers.endswith(b".0"):
        return None
    if acc and (max(acc) > SAFE_INT or min(acc) < -SAFE_INT):
        return None
    return body


_ACC_TYPES = frozenset({int, float})


def signing_bytes(payload: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the payload without its signature: what the device signs."""
    return canonical_json({k: v for k, v in payload.items() if k != "sig"})


def sign_payload(key: SuiteKey, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with `sig` set to the base64url signature of its signing bytes: Ed25519,
    or SM2 (r || s, default ID) for a device of an sm2-sm3 chain; 64 bytes either way."""
    body = {k: v for k, v in payload.items() if k != "sig"}
    return {**body, "sig": b64url(key.sign(canonical_json(body)))}


Verify = Callable[[str, bytes, bytes], bool]
# A device key's shape names its suite (the road-health contract takes only the chain's)
KEY_SUITES = {64: "Ed25519", 130: "SM2"}


def _verify_nothing(public_hex: str, message: bytes, signature: bytes) -> bool:
    return False


def device_verifier(pub_key: str) -> tuple[str, Verify]:
    """The suite of a registered device key and its verify function, bound once per device
    (Ed25519's is chain.crypto.verify itself, so that path costs what it did)."""
    kind = KEY_SUITES.get(len(pub_key), "unusable")
    if kind == "Ed25519":
        return kind, verify
    if kind == "SM2":
        return kind, suite_for("sm2-sm3").verify
    return kind, _verify_nothing


def has_valid_signature(
    payload: dict[str, Any], pub_key: str, *, unsigned: bytes | None = None
) -> bool:
    """True when `sig` verifies over the unsigned payload with the device's key (its suite's).
    `unsigned` is the payload's signing bytes when the caller has them (canonical_pair)."""
    sig = payload.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        raw = from_b64url(sig, field="sig")
    except EncodingError:
        return False
    signed = signing_bytes(payload) if unsigned is None else unsigned
    return len(raw) == 64 and device_verifier(pub_key)[1](pub_key, signed, raw)


def message_hash(payload: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of the whole payload, signature included: the leaf."""
    return sha256(canonical_json(payload)).hex()


def batch_root(hashes: Sequence[str]) -> str:
    """RFC 6962 root over the 32-byte message hashes, in order."""
    return merkle.root([bytes.fromhex(h) for h in hashes]).hex()


def audit_path(hashes: Sequence[str], index: int) -> list[str]:
    """Audit path of leaf `index` among the batch's message hashes."""
    leaf_hashes = [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes]
    return [p.hex() for p in merkle.audit_path(leaf_hashes, index)]


# --- the payload's fields and ranges ------------------------------------------------------------


class PayloadInvalid(WireError):
    """A payload outside the wire contract; `code` is the reason code the sender sees."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


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
    if not _are_samples(acc):
        raise PayloadInvalid(
            "payload_invalid", f"acc_z values must be numbers within ±{ACC_LIMIT_MPS2} m/s²"
        )
    return Telemetry(device, seq, t0, rate, lat, lon, speed, tuple(map(float, acc)), sig)


def _are_samples(acc: list[Any]) -> bool:
    """Every value an int or float (not a bool) within ±ACC_LIMIT_MPS2, none NaN: checked on
    the whole list (its types as one set, its extremes, its sum) rather than value by value,
    a fifth of the cost. The extremes may skip a NaN; the sum of values within the limit is
    finite unless one is NaN."""
    return (
        _ACC_TYPES.issuperset(map(type, acc))
        and min(acc) >= -ACC_LIMIT_MPS2
        and max(acc) <= ACC_LIMIT_MPS2
        and math.isfinite(sum(acc))
    )


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _integer(payload: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = payload[name]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise PayloadInvalid("payload_invalid", f"{name} must be an integer in {lo}..{hi}")
    return value


def _number(payload: dict[str, Any], name: str, lo: float, hi: float) -> float:
    value = payload[name]
    if not _is_finite_number(value) or not lo <= value <= hi:
        raise PayloadInvalid("payload_invalid", f"{name} must be a number in {lo:g}..{hi:g}")
    return float(value)


# --- CBOR ---------------------------------------------------------------------------------------


class CborInvalid(WireError):
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
