"""The wire helpers: topics name the encoding; CBOR decodes what it encodes, refuses the rest."""

from __future__ import annotations

import pytest

from iot_gateway.wire import (
    CborInvalid,
    decode_cbor,
    encode_cbor,
    parse_topic,
    telemetry_topic,
)


def test_cbor_round_trips_a_signed_payload_with_the_signature_as_raw_bytes() -> None:
    payload = {"device": "d-1", "seq": 3, "t0": 1767225600.25, "acc_z": [9.81, -0.5], "sig": "AAEC"}
    raw = encode_cbor(payload)
    assert decode_cbor(raw) == payload
    assert b"AAEC" not in raw  # the 3 signature bytes travel raw, not as base64 text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xa2\x61a", "invalid CBOR"),  # truncated map
        (b"\x01\x02", r"1 trailing byte\(s\) after the CBOR item"),
        (b"\xa2\x61a\x01\x61a\x02", "Duplicate map key"),
        (b"\x81\xf9\x7e\x00", "NaN and Infinity are not allowed"),  # [NaN] as a half float
    ],
)
def test_malformed_cbor_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(CborInvalid, match=reason):
        decode_cbor(raw)


def test_the_topic_suffix_names_the_encoding_and_the_stored_topic_is_the_plain_one() -> None:
    cbor_topic = telemetry_topic("c", "s", "d", "cbor")
    assert cbor_topic == "city/c/road/s/sensor/d/telemetry/cbor"
    parsed = parse_topic(cbor_topic)
    assert parsed is not None and parsed.encoding == "cbor"
    assert str(parsed) == "city/c/road/s/sensor/d/telemetry"
    assert parse_topic("city/c/road/s/sensor/d/telemetry/xml") is None
