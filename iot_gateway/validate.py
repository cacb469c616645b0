"""Per-message checks, cheapest first: size, topic, decoding, schema, device, signature, time,
ranges.

The sequence check needs the outbox's memory of what was accepted, so it runs there
(iot_gateway.outbox); everything here is a pure function of the message, the device registry
and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from chain.encoding import from_b64url, parse_json, sha256
from chain.errors import EncodingError
from iot_gateway.errors import Rejected
from services.roadhealth.wire import (
    ACC_LIMIT_MPS2,
    MAX_SEQ,
    PAYLOAD_FIELDS,
    RATE_RANGE,
    SAMPLES_RANGE,
    SPEED_RANGE,
    T0_RANGE,
    CborInvalid,
    TelemetryTopic,
    Verify,
    canonical_pair,
    decode_cbor,
    device_verifier,
    is_number,
    sorted_body,
    unsigned_part,
)
from services.roadhealth.wire import parse_topic as parse_topic_once

# The wire contract's bounds (services.roadhealth.wire): what road health accepts
MIN_T0_S, MAX_T0_S = T0_RANGE
# A topic's parts, read once per topic string: a fleet publishes on a bounded set of topics
# (a device's segments), and the regular expression and the parts' object cost 2.4 us of a
# message's path each time (the answer is a frozen dataclass, or None: shared safely). Only
# topics short enough to be telemetry topics are remembered (MQTT allows 64 KiB ones)
TOPICS_REMEMBERED = 32_768
TOPIC_MAX_CHARS = 256  # city/{64}/road/{64}/sensor/{64}/telemetry/cbor is 226
_parse_remembered = lru_cache(maxsize=TOPICS_REMEMBERED)(parse_topic_once)


def parse_topic(topic: str) -> TelemetryTopic | None:
    """The topic's parts (services.roadhealth.wire.parse_topic), remembered per topic."""
    if len(topic) > TOPIC_MAX_CHARS:
        return parse_topic_once(topic)
    return _parse_remembered(topic)


@lru_cache(maxsize=TOPICS_REMEMBERED)
def stored_topic(topic: str) -> str:
    """The plain `.../telemetry` topic a message on `topic` is stored and forwarded under."""
    parsed = parse_topic(topic)
    if parsed is None:
        raise ValueError(f"not a telemetry topic: {topic!r}")
    return str(parsed)


@dataclass(frozen=True)
class Limits:
    """What a plausible telemetry message looks like; every bound is configurable."""

    max_bytes: int = 64 * 1024
    max_future_s: float = 30.0  # t0 ahead of the gateway's clock
    max_age_s: float = 6 * 3600.0  # t0 behind it (devices buffer through coverage gaps)
    min_rate_hz: int = RATE_RANGE[0]
    max_rate_hz: int = RATE_RANGE[1]
    min_samples: int = SAMPLES_RANGE[0]
    max_samples: int = SAMPLES_RANGE[1]
    max_abs_acc_mps2: float = ACC_LIMIT_MPS2
    max_speed_mps: float = SPEED_RANGE[1]


@dataclass(frozen=True)
class Device:
    """A device as the chain's registry lists it."""

    device: str
    pub_key: str
    active: bool
    # The key's suite (Ed25519, or SM2 on an sm2-sm3 chain) and its verify, bound once here
    suite: str = field(init=False, repr=False, compare=False)
    verify: Verify = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        suite, verify = device_verifier(self.pub_key)
        object.__setattr__(self, "suite", suite)
        object.__setattr__(self, "verify", verify)


@dataclass(frozen=True)
class Checked:
    """A message that passed every stateless check, with its canonical bytes and hash."""

    topic: TelemetryTopic
    payload: dict[str, Any]
    body: bytes  # RFC 8785 canonical JSON of the whole payload: what is stored and forwarded
    hash: str  # hex SHA-256 of body: the Merkle leaf


DeviceLookup = Callable[[str], Device | None]


def check_message(
    topic: str, raw: bytes, *, now_s: float, lookup: DeviceLookup, limits: Limits
) -> Checked:
    """Run the stateless checks in order; raise Rejected with the first that fails."""
    # Verify the size before parsing anything
    if len(raw) > limits.max_bytes:
        raise Rejected("too_large", f"{len(raw)} bytes, limit {limits.max_bytes}")
    parsed_topic = parse_topic(topic)
    if parsed_topic is None:
        raise Rejected("bad_topic", "not city/{city}/road/{segment}/sensor/{device}/telemetry")
    payload, pair = read_payload(raw, parsed_topic)
    check_schema(payload)
    # Verify the topic names the device that signed
    if payload["device"] != parsed_topic.device:
        raise Rejected(
            "topic_mismatch", f"payload device {payload['device']!r} on {parsed_topic.device!r}"
        )
    if pair is None:
        try:
            pair = canonical_pair(payload)
        except EncodingError as exc:
            # e.g. an integer beyond 2^53, which RFC 8785 (I-JSON) cannot represent exactly
            raise Rejected("bad_schema", str(exc)) from exc
    unsigned, body = pair
    check_device_signature(payload, unsigned, lookup(payload["device"]))
    check_time(payload, now_s, limits)
    check_ranges(payload, limits)
    return Checked(parsed_topic, payload, body, sha256(body).hex())


def read_payload(raw: bytes, topic: TelemetryTopic) -> tuple[Any, tuple[bytes, bytes] | None]:
    """The payload, with its signed bytes and whole canonical bytes when it arrived as its own
    canonical JSON (devices sign canonical JSON and send it as signed): the bytes received are
    then what is hashed and stored, and nothing is encoded again. Anything else is read
    strictly and encoded by the caller."""
    if topic.encoding == "json":
        try:
            # orjson, not json: a third of the cost. Its answer is only used when encoding it
            # again gives back `raw` exactly (as_received); anything else, duplicate members
            # included, is read again strictly by decode_payload, which names the fault
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:  # nesting past 1,024 levels included
            payload = None
        else:
            pair = as_received(raw, payload)
            if pair is not None:
                return payload, pair
    return decode_payload(raw, topic), None


def as_received(raw: bytes, payload: Any) -> tuple[bytes, bytes] | None:
    """(payload without sig, whole payload) as canonical JSON cut from `raw`, when `raw` is the
    canonical JSON of `payload`; None when it is not, or may not be: `raw` is compared with
    road health's own encoding of a payload of the contract's shape (`sorted_body`, which
    answers only where orjson's sorted bytes are RFC 8785's), so gateway and road health
    agree on which bytes are canonical by construction. What the schema refuses is refused
    whatever this answers."""
    if type(payload) is not dict or sorted_body(payload) != raw:
        return None
    return unsigned_part(payload, raw), raw


def decode_payload(raw: bytes, topic: TelemetryTopic) -> Any:
    """The payload in the encoding the topic names (JSON, or CBOR under `.../telemetry/cbor`)."""
    if topic.encoding == "cbor":
        try:
            return decode_cbor(raw)
        except CborInvalid as exc:
            raise Rejected("not_cbor", str(exc)) from exc
    try:
        return parse_json(raw)
    except EncodingError as exc:
        raise Rejected("not_json", str(exc)) from exc
    except RecursionError as exc:  # arrays or objects nested thousands deep
        raise Rejected("not_json", "nested too deeply") from exc


_NUMBER = frozenset((float, int))


def check_schema(payload: Any) -> None:
    """Exactly the contract's fields with the contract's types."""
    if not isinstance(payload, dict):
        raise Rejected("bad_schema", "payload must be a JSON object")
    missing = PAYLOAD_FIELDS - payload.keys()
    extra = payload.keys() - PAYLOAD_FIELDS
    if missing or extra:
        raise Rejected("bad_schema", f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    if not isinstance(payload["device"], str) or not isinstance(payload["sig"], str):
        raise Rejected("bad_schema", "device and sig must be strings")
    for name in ("seq", "rate_hz"):
        value = payload[name]
        if not isinstance(value, int) or isinstance(value, bool):
            raise Rejected("bad_schema", f"{name} must be an integer")
    for name in ("t0", "lat", "lon", "speed_mps"):
        if not is_number(payload[name]):
            raise Rejected("bad_schema", f"{name} must be a number")
    acc = payload["acc_z"]
    # type() rather than isinstance: bool is an int but not a number here (the types as one
    # set: a generator over thousands of samples cost more than the rest of the schema)
    if not isinstance(acc, list) or not acc or not _NUMBER.issuperset(map(type, acc)):
        raise Rejected("bad_schema", "acc_z must be a non-empty list of numbers")


def check_device_signature(payload: dict[str, Any], unsigned: bytes, device: Device | None) -> None:
    """The device is registered and active, and its key signed `unsigned` (payload minus sig)."""
    if device is None:
        raise Rejected("unknown_device", f"device {payload['device']!r} is not registered")
    if not device.active:
        raise Rejected("device_suspended", f"device {payload['device']!r} is suspended")
    try:
        signature = from_b64url(payload["sig"], field="sig")
    except EncodingError as exc:
        raise Rejected("bad_signature", str(exc)) from exc
    if not device.verify(device.pub_key, unsigned, signature):
        raise Rejected(
            "bad_signature",
            f"signature does not verify with the registered key ({device.suite})",
        )


def check_time(payload: dict[str, Any], now_s: float, limits: Limits) -> None:
    """The window's start lies within the allowed skew of the gateway's clock."""
    t0 = float(payload["t0"])
    if not MIN_T0_S <= t0 <= MAX_T0_S:
        raise Rejected("clock_skew", f"t0 {t0} is outside 2000..2100")
    if not math.isfinite(t0) or t0 > now_s + limits.max_future_s:
        raise Rejected("clock_skew", f"t0 {t0} is {t0 - now_s:.1f}s in the future")
    if t0 < now_s - limits.max_age_s:
        raise Rejected("clock_skew", f"t0 {t0} is {now_s - t0:.0f}s old")


def check_ranges(payload: dict[str, Any], limits: Limits) -> None:
    """Physically plausible values."""
    problems = []
    if not 0 <= payload["seq"] <= MAX_SEQ:
        problems.append("seq outside 0..2^53-1")
    if not limits.min_rate_hz <= payload["rate_hz"] <= limits.max_rate_hz:
        problems.append(f"rate_hz outside {limits.min_rate_hz}..{limits.max_rate_hz}")
    if not -90.0 <= payload["lat"] <= 90.0 or not -180.0 <= payload["lon"] <= 180.0:
        problems.append("lat/lon outside the globe")
    if not 0.0 <= payload["speed_mps"] <= limits.max_speed_mps:
        problems.append(f"speed_mps outside 0..{limits.max_speed_mps}")
    acc = payload["acc_z"]
    if not limits.min_samples <= len(acc) <= limits.max_samples:
        problems.append(f"{len(acc)} samples, allowed {limits.min_samples}..{limits.max_samples}")
    elif max(max(acc), -min(acc)) > limits.max_abs_acc_mps2:
        problems.append(f"|acc_z| above {limits.max_abs_acc_mps2} m/s^2")
    if problems:
        raise Rejected("out_of_range", "; ".join(problems))
