"""A payload that arrives as its own canonical JSON is hashed and stored as received; any other
is read strictly and encoded again, so both ways store the same bytes and give the same answer."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import SigningKey
from chain.encoding import canonical, parse_json, sha256
from chain.errors import EncodingError
from iot_gateway.errors import Rejected
from iot_gateway.validate import Device, Limits, as_received, check_message, read_payload
from iot_gateway.wire import canonical_pair, parse_topic, sign_payload, telemetry_topic

KEY = SigningKey.from_seed(bytes(range(32)))
TOPIC = telemetry_topic("c", "s", "veh-1")
T0 = 1_767_225_600.25


def _payload(**changes: Any) -> dict[str, Any]:
    body = {
        "device": "veh-1",
        "seq": 7,
        "t0": T0,
        "rate_hz": 50,
        "lat": 22.5431,
        "lon": 114.0579,
        "speed_mps": 12.5,
        "acc_z": [9.81, 9.7734, 10.02, -0.5] * 4,
    }
    return sign_payload(KEY, {**body, **changes})


def _strict(raw: bytes) -> tuple[bytes, bytes] | str:
    """What the gateway made of a JSON payload before: read strictly, encoded again."""
    try:
        return canonical_pair(parse_json(raw))
    except (EncodingError, RecursionError) as exc:
        return type(exc).__name__


def _check(raw: bytes) -> tuple[str, bytes] | str:
    """The stored bytes and hash of an accepted message, or the reason it was refused."""
    try:
        checked = check_message(
            TOPIC,
            raw,
            now_s=T0,
            lookup=lambda device: Device(device, KEY.public_hex, True),
            limits=Limits(max_future_s=1e12, max_age_s=1e12),
        )
    except Rejected as exc:
        return exc.code
    return checked.hash, checked.body


@pytest.mark.parametrize(
    "acc_z",
    [
        [9.81, 9.7734, 10.02, -0.5] * 4,
        # RFC 8785 writes these plainly (not 1e-05): canonical, so taken as received too
        [0.00001, 9.81, 0.000123, -0.00001] * 4,
    ],
)
def test_a_canonical_payload_is_taken_as_received(acc_z: list[float]) -> None:
    raw = canonical(_payload(acc_z=acc_z))
    topic = parse_topic(TOPIC)
    assert topic is not None
    payload, pair = read_payload(raw, topic)
    assert pair is not None and pair[1] is raw
    assert pair == canonical_pair(payload) == canonical_pair(parse_json(raw))
    assert _check(raw) == (sha256(raw).hex(), raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (json.dumps(_payload()).encode(), "spaces"),
        (json.dumps(_payload(), separators=(",", ":")).encode(), "members out of order"),
        (canonical(_payload()).replace(b'"seq":7', b'"seq":7,"seq":7'), "a member twice"),
        (canonical(_payload()).replace(b"[9.81", b"[9.810"), "a trailing zero"),
        (canonical(_payload()).replace(b"[9.81", b"[9.81e0"), "an exponent"),
        (canonical(_payload()).replace(b"-0.5]", b"-0.5E0]"), "a capital exponent"),
        (canonical(_payload()).replace(b'"rate_hz":50', b'"rate_hz":50.0'), "an integral float"),
        (canonical(_payload()).replace(b"[9.81", b"[9.0"), "an integral float in acc_z"),
        (canonical(_payload()).replace(b"-0.5]", b"1.0]"), "an integral float last"),
        (canonical(_payload()).replace(b"[9.81", b"[0.000001"), "a small float written out"),
        (canonical(_payload()).replace(b"[9.81", b"[1e-7"), "a smaller float's exponent"),
        (canonical(_payload()).replace(b'"seq":7', b'"seq":9007199254740992'), "seq past 2^53-1"),
        (canonical(_payload()).replace(b"[9.81", b"[9007199254740993"), "a big integer"),
        (canonical(_payload()).replace(b'"lat":22.5431', b'"lat":NaN'), "NaN"),
        (canonical(_payload()).replace(b'"veh-1"', b'"veh\\u002d1"'), "an escaped character"),
        (b"\xef\xbb\xbf" + canonical(_payload()), "a byte order mark"),
    ],
)
def test_any_other_payload_is_read_strictly_and_answered_as_before(raw: bytes, why: str) -> None:
    topic = parse_topic(TOPIC)
    assert topic is not None
    try:
        _, pair = read_payload(raw, topic)
    except Rejected:
        pair = None  # refused by the strict reader, as before
    assert pair is None, why
    strict = _strict(raw)
    got = _check(raw)
    if isinstance(strict, tuple):
        # Accepted or refused as before; when stored, the canonical bytes, not those received
        assert isinstance(got, str) or got == (sha256(strict[1]).hex(), strict[1]), why
    else:
        assert got in ("not_json", "bad_schema"), why


_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**60), 2**60),
)


@settings(max_examples=400, deadline=None)
@given(
    acc=st.lists(_numbers, min_size=1, max_size=20),
    lat=_numbers,
    seq=st.integers(0, 2**60),
    indent=st.sampled_from([None, 1]),
)
def test_taken_as_received_only_when_it_is_the_canonical_form_and_then_cut_alike(
    acc: list[float], lat: float, seq: int, indent: int | None
) -> None:
    payload = {  # the contract's nine members (the schema refuses any other set)
        **{"acc_z": acc, "lat": lat, "seq": seq, "device": "d", "sig": "AAEC", "t0": 1.5},
        **{"lon": 114.0579, "rate_hz": 50, "speed_mps": 12.5},
    }
    raw = json.dumps(payload, sort_keys=True, indent=indent, separators=(",", ":")).encode()
    pair = as_received(raw, orjson.loads(raw))  # read as the gateway reads it
    try:
        expected = canonical_pair(parse_json(raw))
    except EncodingError:
        assert pair is None  # RFC 8785 cannot write it: the strict path refuses it
        return
    if pair is not None:
        assert pair == expected
    elif expected[1] == raw:
        # Canonical, yet read the slow way: only for a number orjson might write otherwise
        # (1e+21 is written alike, 1e+16 and 0.000001 are not)
        assert not all(map(_ordinary, [*acc, lat]))


def _ordinary(value: float) -> bool:
    if isinstance(value, int):
        return abs(value) < 2**53
    return 1e-4 <= abs(value) < 1e16 and not value.is_integer()
