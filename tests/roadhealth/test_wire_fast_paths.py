"""Road health's cheaper reading of a payload gives the answers the general one gave.

canonical_pair encodes a payload of the contract's shape with orjson (wire.sorted_body), and
parse_payload checks acc_z as a whole list (wire._are_samples): for any payload, the bytes must
be RFC 8785's (chain.encoding.canonical) and the verdict the value-by-value rule's.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import SigningKey
from chain.encoding import canonical
from chain.errors import EncodingError
from services.roadhealth import wire
from services.roadhealth.wire import (
    ACC_LIMIT_MPS2,
    PayloadInvalid,
    canonical_pair,
    parse_payload,
    sign_payload,
)

KEY = SigningKey.from_seed(bytes(range(32)))

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-200, max_value=200),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-200, max_value=200),
    st.sampled_from([0.0, -0.0, 1e-5, 1e-7, 1e16, 1e21, 2.0**53, 2**53, 2**53 + 1, 2**64, 0.1]),
)
_samples = st.one_of(
    _numbers, st.booleans(), st.none(), st.text(max_size=3), st.lists(_numbers, max_size=2)
)
# Values the contract's payloads carry, for which orjson's bytes are used
_plain = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.floats(min_value=1e-3, max_value=1e6).filter(lambda v: not v.is_integer()),
)
_plain_texts = st.text(alphabet="ab09_.=-", min_size=1, max_size=8)
_texts = st.one_of(
    st.text(max_size=8),
    st.sampled_from(['a"b', "a\\b", "a\x1fb", "\u2028", "\ud800", "é"]),
)


def _payload(**changes: Any) -> dict[str, Any]:
    body = {
        "device": "veh-1",
        "seq": 7,
        "t0": 1_767_225_600.25,
        "rate_hz": 50,
        "lat": 22.5431,
        "lon": 114.0579,
        "speed_mps": 12.5,
        "acc_z": [9.81, 9.7734, 10.02, -0.5] * 4,
    }
    return sign_payload(KEY, {**body, **changes})


def _general(payload: dict[str, Any]) -> tuple[bytes, bytes] | str:
    """The pair as the general encoder makes it, or the error it raises."""
    try:
        whole = canonical(payload)
        return canonical({k: v for k, v in payload.items() if k != "sig"}), whole
    except EncodingError:
        return "EncodingError"


def _pair(payload: dict[str, Any]) -> tuple[bytes, bytes] | str:
    try:
        return canonical_pair(payload)
    except EncodingError:
        return "EncodingError"


@settings(max_examples=800, deadline=None)
@given(
    acc=st.lists(_samples, max_size=20),
    scalars=st.one_of(
        st.fixed_dictionaries(dict.fromkeys(wire._SCALARS, _plain)),
        st.fixed_dictionaries(
            {k: st.one_of(_numbers, st.booleans(), st.none()) for k in wire._SCALARS}
        ),
    ),
    device=st.one_of(_plain_texts, _texts),
    sig=st.one_of(_plain_texts, _texts),
)
def test_a_payload_of_any_values_is_encoded_as_rfc_8785_encodes_it(
    acc: list[Any], scalars: dict[str, Any], device: str, sig: str
) -> None:
    payload = {**scalars, "acc_z": acc, "device": device, "sig": sig}
    assert _pair(payload) == _general(payload)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-ACC_LIMIT_MPS2, max_value=ACC_LIMIT_MPS2), st.integers(0, 15))
def test_a_window_of_the_contract_takes_the_fast_path_and_signs_alike(
    value: float, at: int
) -> None:
    acc = [9.81, 9.7734, 10.02, -0.5] * 4
    acc[at] = value
    payload = _payload(acc_z=acc)
    unsigned, whole = canonical_pair(payload)
    assert (unsigned, whole) == _general(payload)
    plain = all(
        math.isfinite(v) and not float(v).is_integer() and 1e-4 <= abs(v) < 1e16 for v in acc
    )
    if plain:  # a window of ordinary samples: orjson's bytes, not the general encoder's
        assert wire.sorted_body(payload) == whole
    assert wire.has_valid_signature(payload, KEY.public_hex, unsigned=unsigned)


def _one_by_one(acc: list[Any]) -> bool:
    """The rule as it was written before: each value a finite number within the limit."""
    return all(
        wire.is_number(v) and math.isfinite(v) and -ACC_LIMIT_MPS2 <= v <= ACC_LIMIT_MPS2
        for v in acc
    )


@settings(max_examples=800, deadline=None)
@given(st.lists(_samples, min_size=16, max_size=40))
def test_acc_z_is_checked_as_a_whole_with_the_value_by_value_verdict(acc: list[Any]) -> None:
    payload = {**_payload(), "acc_z": acc}
    if _one_by_one(acc):
        assert parse_payload(payload).acc_z == tuple(float(v) for v in acc)
    else:
        with pytest.raises(PayloadInvalid, match="acc_z values must be numbers within"):
            parse_payload(payload)


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        True,
        "9.81",
        None,
        [9.81],
        160.5,
        -161,
        10**400,
    ],
)
def test_one_bad_sample_anywhere_refuses_the_window(bad: Any) -> None:
    for at in (0, 7, 15):
        acc: list[Any] = [9.81] * 16
        acc[at] = bad
        with pytest.raises(PayloadInvalid, match="acc_z values must be numbers within"):
            parse_payload({**_payload(), "acc_z": acc})


def test_a_nan_among_samples_within_the_limit_is_refused_wherever_it_is() -> None:
    # min and max may skip a NaN; the sum may not
    for at in range(16):
        acc: list[Any] = [1.0] * 16
        acc[at] = math.nan
        with pytest.raises(PayloadInvalid):
            parse_payload({**_payload(), "acc_z": acc})


@pytest.mark.parametrize(
    "odd",
    [math.nan, math.inf, -0.0, 2.0, 2**53 + 1, -(2**53) - 1, 1e16, 1e-7, 2**64 + 1, True, None],
)
def test_a_sample_orjson_writes_its_own_way_is_encoded_as_rfc_8785_does(odd: Any) -> None:
    # NaN and infinities (orjson: null; RFC 8785: refused), integral floats (2.0 vs 2), ints
    # past 2^53 (refused), past 2^64 (orjson refuses), exponents
    for at in (0, 9, 15):
        acc: list[Any] = [9.81, 9.7734, 10.02, -0.5] * 4
        acc[at] = odd
        payload = {**_payload(), "acc_z": acc}
        assert _pair(payload) == _general(payload)
        for name in wire._SCALARS:
            assert _pair({**payload, name: odd}) == _general({**payload, name: odd})
