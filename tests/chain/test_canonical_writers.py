"""The canonical encoder's fast writer (orjson) against the C encoder and RFC 8785.

`chain.encoding.canonical` writes a plain value (one `_plain` leaves as it is or makes safe)
with orjson; the bytes are what every node hashes, so they must be exactly what the C encoder
(and RFC 8785) writes: every character, every plain float, subclasses of the JSON types, and
what orjson refuses (nesting past its depth, lone surrogates) still written or refused as
before.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import canonical, canonical_value
from chain.errors import EncodingError

_C_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode


def test_every_character_is_written_as_the_c_encoder_and_rfc_8785_write_it() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(chars), 4096):
        text = "".join(chars[start : start + 4096])
        value = {"s": text, "list": list(text[:256])}
        assert canonical(value) == _C_ENCODER(value).encode()
    for c in range(0x80):  # escapes: each alone, in a key too
        value = {chr(c): chr(c)}
        assert canonical(value) == _C_ENCODER(value).encode() == rfc8785.dumps(value)


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=1e-4, max_value=1e16, exclude_max=True))
def test_a_plain_float_is_written_as_the_c_encoder_and_rfc_8785_write_it(value: float) -> None:
    assert canonical(value) == rfc8785.dumps(value)
    if not value.is_integer():  # an integral float is written as the integer it is
        assert _C_ENCODER(value).encode() == rfc8785.dumps(value)
    assert canonical({"x": [value, -value]}) == rfc8785.dumps({"x": [value, -value]})


def test_floats_at_the_edges_of_the_plain_range() -> None:
    for value in (
        1e-4,
        math.nextafter(1e-4, 1),
        math.nextafter(1e16, 0),
        0.1 + 0.2,
        123456789012345.67,
        -9.999999999999998e15,
        1e-4 * 3,
    ):
        assert canonical(value) == rfc8785.dumps(value), value


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tagged(dict[str, Any]):
    pass


def test_subclasses_of_the_json_types_are_written_by_their_values() -> None:
    value = {"c": Colour.RED, "l": Level.HIGH, "t": Tagged(b=1, a=[Colour.RED])}
    assert canonical(value) == b'{"c":"red","l":3,"t":{"a":["red"],"b":1}}'
    assert canonical(value) == rfc8785.dumps(json.loads(_C_ENCODER(value)))


def test_nesting_past_orjson_depth_is_written_by_the_c_encoder() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": [deep]}
    assert canonical(deep) == _C_ENCODER(deep).encode() == rfc8785.dumps(deep)


def test_a_lone_surrogate_is_refused_as_before() -> None:
    for value in ("\ud800", {"a": "x\udfff"}, ["\udc00"]):
        with pytest.raises(EncodingError):
            canonical(value)


def test_normalised_values_read_back_as_before() -> None:
    encoded, read_back = canonical_value({"a": 2.0, "b": [-0.0, 0.5]})
    assert encoded == b'{"a":2,"b":[0,0.5]}'
    assert read_back == {"a": 2, "b": [0, 0.5]}
    assert type(read_back["a"]) is int
    value = {"a": 1, "b": "x"}
    assert canonical_value(value) == (b'{"a":1,"b":"x"}', value)
    assert canonical_value(value)[1] is value
