"""The canonical JSON writer in C (smartcity_native._canon) against RFC 8785 and the Python path.

`chain.encoding.canonical` hands every value to the C writer first; what it writes is what every
node hashes (signing bytes, receipts, state values), so it must be exactly rfc8785's bytes, and
what it declines (None) must be exactly what the Python path has to write or refuse itself. A
value it writes and should have declined would fork the chain between nodes with and without
the extension; one it declines and could have written only costs time, but is checked too, so
the fast path is not silently lost."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

import chain.encoding as encoding
from chain.encoding import canonical, canonical_value
from chain.errors import EncodingError

from ._native import native_module_or_skip

_canon = native_module_or_skip(
    "smartcity_native._canon",
    openssl=False,
    tests="these tests hold the C canonical JSON writer to RFC 8785 and the Python path",
    otherwise="without it the Python path writes all canonical JSON, which the rest of the"
    " suite tests",
)

SAFE_INT = 2**53 - 1

# Keys and strings from every plane, surrogates and controls included; numbers at and past the
# edges the writer decides on
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([SAFE_INT, -SAFE_INT, SAFE_INT + 1, -SAFE_INT - 1, 0])
    | st.floats()
    | st.sampled_from(
        [
            1e-4,
            math.nextafter(1e-4, 0),
            1e16,
            math.nextafter(1e16, 0),
            2.0**53,
            2.0**53 + 2,
            -0.0,
            5e-324,
            1e21,
            math.inf,
            -math.inf,
            math.nan,
            0.1 + 0.2,
            123456789.125,
        ]
    )
    | _text
)
_values = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_text, children, max_size=5)
        | st.tuples(children)
    ),
    max_leaves=24,
)


def _python_path(value: Any) -> tuple[bytes, bool] | None:
    """What chain.encoding writes with the C writer off (None where it refuses the value)."""
    native, encoding._native_encode = encoding._native_encode, None
    try:
        return encoding._canonical(value)
    except EncodingError:
        return None
    finally:
        encoding._native_encode = native


def _needs_python(value: Any) -> bool:
    """What the writer must decline: what _plain does not pass as it is or make safe, and what
    orjson then refuses (a lone surrogate; the values drawn here nest far less than its limit)."""
    import orjson

    plain = encoding._plain(value)
    if plain is encoding._NOT_PLAIN:
        return True
    try:
        orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return True
    return False


@settings(max_examples=1000, deadline=None)
@given(_values)
def test_what_the_c_writer_writes_is_rfc_8785_and_what_it_declines_is_the_python_paths(
    value: Any,
) -> None:
    written = _canon.encode(value)
    python = _python_path(value)
    if written is None:
        assert _needs_python(value), f"declined a value the fast path writes: {value!r}"
        return
    assert not _needs_python(value), f"wrote a value the Python path must decide: {value!r}"
    assert python is not None
    assert written == python
    data, unchanged = written
    assert data == rfc8785.dumps(value)
    # `unchanged`: the bytes read back as the value itself (an integral float reads back int)
    assert unchanged == (json.loads(data) == value and _same_types(json.loads(data), value))


def _same_types(read: Any, value: Any) -> bool:
    if type(read) is not type(value):
        return False
    if type(value) is dict:
        return all(_same_types(read[k], v) for k, v in value.items())
    if type(value) is list:
        return all(_same_types(a, b) for a, b in zip(read, value, strict=True))
    return True


def test_every_character_in_a_string_and_a_key_is_written_as_rfc_8785_writes_it() -> None:
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(chars), 8192):
        text = "".join(chars[start : start + 8192])
        value = {"s": text, "l": list(text[:64])}
        assert _canon.encode(value) == (rfc8785.dumps(value), True)
    for start in range(0, 0xD800, 2048):  # every key below the surrogates, sorted among others
        value = {chr(c): chr(c) for c in range(start, start + 2048)}
        assert _canon.encode(value) == (rfc8785.dumps(value), True), hex(start)


def test_keys_are_declined_where_byte_order_is_not_utf16_order() -> None:
    # U+FB01 sorts after U+1F600 by code point and byte, before it by UTF-16 unit
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert _canon.encode(value) is None
    assert _canon.encode({"\ud7ff": 1}) == (rfc8785.dumps({"\ud7ff": 1}), True)
    assert _canon.encode({"\ue000": 1}) is None
    assert canonical(value) == rfc8785.dumps(value)


def test_what_rfc_8785_refuses_is_declined_and_refused_by_the_python_path() -> None:
    for value in (math.nan, math.inf, {"a": [-math.inf]}, "\ud800", {"\udfff": 1}, {1: 2}):
        assert _canon.encode(value) is None
        with pytest.raises(EncodingError):
            canonical(value)


def test_integers_past_2_53_and_floats_outside_the_plain_range_go_the_python_path() -> None:
    for value in (SAFE_INT + 1, -SAFE_INT - 1, 2**64, 2.0**53, 1e16, 9.999e-5, 1e-7, 1e21):
        assert _canon.encode(value) is None
        try:
            expected = rfc8785.dumps(value)
        except rfc8785.CanonicalizationError:  # an integer past 2^53: refused, as RFC 8785 does
            with pytest.raises(EncodingError):
                canonical(value)
        else:
            assert canonical(value) == expected
    assert _canon.encode(SAFE_INT) == (b"9007199254740991", True)
    assert _canon.encode([2.0, -0.0]) == (b"[2,0]", False)
    assert canonical_value({"x": 2.0}) == (b'{"x":2}', {"x": 2})


def test_deep_nesting_and_a_value_that_holds_itself_are_declined_not_crashed() -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    assert _canon.encode(deep) is None
    assert canonical(deep) == rfc8785.dumps(deep)
    loop: list[Any] = []
    loop.append(loop)
    assert _canon.encode(loop) is None
    with pytest.raises((EncodingError, RecursionError, ValueError)):
        canonical(loop)


def test_large_values_outgrow_the_stack_buffer_intact() -> None:
    value: dict[str, Any] = {
        f"k{i:05d}": ["\n" * 50, "é" * 40, i, (i + 0.5) / 7] for i in range(3000)
    }
    assert _canon.encode(value) == (rfc8785.dumps(value), True)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _values, max_size=5))
def test_a_body_is_read_as_canonical_alike_with_and_without_the_c_writer(
    value: dict[str, Any],
) -> None:
    """read_canonical_object (a transaction's body from a peer or a client) takes the C writer's
    bytes as its test: it must take and refuse exactly what the Python path does."""
    import orjson

    raws = []
    for write in (
        lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS),
        lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":")),
        canonical,
    ):
        try:
            raw = write(value)
        except (TypeError, ValueError, EncodingError):  # orjson's refusals are TypeErrors
            continue
        raws.append(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    native = encoding._native_encode
    for raw in raws:
        with_c = encoding.read_canonical_object(raw)
        encoding._native_encode = None
        try:
            without = encoding.read_canonical_object(raw)
        finally:
            encoding._native_encode = native
        assert with_c == without
        assert (with_c is None) == (without is None)
