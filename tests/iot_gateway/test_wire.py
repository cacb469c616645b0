"""The wire helpers: topics name the encoding; CBOR decodes what it encodes, refuses the rest."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import iot_gateway.wire as gateway_wire
import services.roadhealth.wire as road_wire
from chain import merkle
from chain.crypto import SigningKey
from chain.encoding import canonical, sha256
from iot_gateway.errors import Rejected
from iot_gateway.validate import Device, Limits, check_message
from iot_gateway.wire import (
    CborInvalid,
    decode_cbor,
    encode_cbor,
    message_hash,
    parse_topic,
    sign_payload,
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


# --- one wire contract: the gateway and road health read the same module ----------------------

KEY = SigningKey.from_seed(bytes(range(32)))
T0 = 1_767_225_600.0


def signed(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "device": "veh-1",
        "seq": 7,
        "t0": T0,
        "rate_hz": 50,
        "lat": 52.52,
        "lon": 13.4,
        "speed_mps": 12.5,
        "acc_z": [9.81 + 0.01 * i for i in range(32)],
    }
    return sign_payload(KEY, {**body, **changes})


def test_the_gateway_uses_road_healths_wire_module_not_a_copy() -> None:
    assert gateway_wire.parse_topic is road_wire.parse_topic
    assert gateway_wire.message_hash is road_wire.message_hash
    assert gateway_wire.sign_payload is road_wire.sign_payload
    assert gateway_wire.PAYLOAD_FIELDS is road_wire.PAYLOAD_FIELDS


@pytest.mark.parametrize("encoding", ["json", "cbor"])
def test_both_sides_read_the_device_from_a_topic_in_either_encoding(encoding: str) -> None:
    topic = telemetry_topic("c", "a-12", "veh-1", encoding)  # type: ignore[arg-type]
    parsed = parse_topic(topic)
    assert parsed is not None and parsed.device == "veh-1"
    assert road_wire.topic_device(topic) == "veh-1"


@pytest.mark.parametrize(
    "topic",
    [
        "city/c/road/s/sensor/d/telemetry/xml",
        "city/c/road/a b/sensor/d/telemetry",  # a space is no topic level
        "city/c/road/s/sensor/+/telemetry",
        "city/c/road/s/sensor//telemetry",
    ],
)
def test_both_sides_refuse_the_same_topics(topic: str) -> None:
    assert parse_topic(topic) is None
    assert road_wire.topic_device(topic) is None


def test_message_hash_is_the_hex_leaf_the_gateway_stores_and_road_health_checks() -> None:
    payload = signed()
    checked = check_message(
        telemetry_topic("c", "s", "veh-1"),
        canonical(payload),
        now_s=T0,
        lookup=lambda device: Device(device, KEY.public_hex, True),
        limits=Limits(),
    )
    assert message_hash(payload) == checked.hash == sha256(canonical(payload)).hex()
    assert road_wire.parse_payload(payload).seq == 7
    assert road_wire.has_valid_signature(payload, KEY.public_hex)
    assert road_wire.batch_root([checked.hash]) == merkle.root([bytes.fromhex(checked.hash)]).hex()


def test_the_gateways_default_limits_are_the_contracts_ranges() -> None:
    limits = Limits()
    assert (limits.min_rate_hz, limits.max_rate_hz) == road_wire.RATE_RANGE
    assert (limits.min_samples, limits.max_samples) == road_wire.SAMPLES_RANGE
    assert limits.max_abs_acc_mps2 == road_wire.ACC_LIMIT_MPS2
    assert limits.max_speed_mps == road_wire.SPEED_RANGE[1]


@pytest.mark.parametrize(
    ("change", "gateway_code"),
    [
        ({"rate_hz": 1001}, "out_of_range"),
        ({"acc_z": [0.0] * 15}, "out_of_range"),
        ({"speed_mps": 70.5}, "out_of_range"),
        ({"t0": 4_102_444_801.0}, "clock_skew"),
    ],
)
def test_what_the_gateway_refuses_road_health_refuses_too(
    change: dict[str, object], gateway_code: str
) -> None:
    payload = signed(**change)
    with pytest.raises(Rejected) as refused:
        check_message(
            telemetry_topic("c", "s", "veh-1"),
            canonical(payload),
            now_s=float(payload["t0"]),  # type: ignore[arg-type]
            lookup=lambda device: Device(device, KEY.public_hex, True),
            limits=Limits(max_future_s=1e12, max_age_s=1e12),
        )
    assert refused.value.code == gateway_code
    with pytest.raises(road_wire.PayloadInvalid):
        road_wire.parse_payload(payload)


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["sig", "a", "z", "é", ""]), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _values, max_size=5), _values)
def test_the_signed_bytes_cut_from_the_whole_are_the_canonical_bytes_without_sig(
    rest: dict[str, object], sig: object
) -> None:
    # canonical_pair encodes once and cuts the `sig` member out; whatever the payload (nested
    # objects with their own `sig`, keys sorting around it, strings quoting it), the cut must
    # be what encoding the payload without `sig` gives
    payload = {**{k: v for k, v in rest.items() if k != "sig"}, "sig": sig}
    unsigned, body = road_wire.canonical_pair(payload)
    assert body == canonical(payload)
    assert unsigned == canonical({k: v for k, v in payload.items() if k != "sig"})


@pytest.mark.parametrize(
    "acc_z", [[9.81] * 31 + [True], [9.81] * 31 + ["9.81"], [None] + [9.81] * 31, [[9.81]] * 32, []]
)
def test_acc_z_must_be_a_non_empty_list_of_numbers(acc_z: list[object]) -> None:
    payload = signed(acc_z=acc_z)
    with pytest.raises(Rejected) as refused:
        check_message(
            telemetry_topic("c", "s", "veh-1"),
            canonical(payload),
            now_s=float(payload["t0"]),  # type: ignore[arg-type]
            lookup=lambda device: Device(device, KEY.public_hex, True),
            limits=Limits(max_future_s=1e12, max_age_s=1e12),
        )
    assert (refused.value.code, refused.value.detail) == (
        "bad_schema",
        "acc_z must be a non-empty list of numbers",
    )


def test_topics_are_remembered_only_when_short_enough_to_be_telemetry_topics() -> None:
    from iot_gateway import validate

    longest = "city/" + "c" * 64 + "/road/" + "r" * 64 + "/sensor/" + "d" * 64 + "/telemetry/cbor"
    assert len(longest) <= validate.TOPIC_MAX_CHARS
    parsed = validate.parse_topic(longest)
    assert parsed is not None and parsed.device == "d" * 64 and parsed.encoding == "cbor"
    assert validate.parse_topic(longest) is parsed  # remembered
    flood = "city/c/road/r/sensor/d/telemetry/" + "x" * 60_000
    assert validate.parse_topic(flood) is None
    before = validate._parse_remembered.cache_info().currsize
    validate.parse_topic(flood + "y")
    assert validate._parse_remembered.cache_info().currsize == before
