"""Ed25519 under ZIP-215's rule: the batch check, its C and its reference, and libsodium.

Validators must agree on every signature, a crafted one included: a block one validator finds
valid and another does not stalls the chain. The chain's rule is the cofactored equation
(chain.zip215); a batch is checked in C in one multiplication, a single signature by libsodium
first and by the rule's own check where libsodium refuses. Hypothesis spoils signatures in
every way that matters to the equation (R or S changed, S not reduced, R moved by a point of
small order, a key with a small-order part, another message) and the C must answer as its
Python reference does, for whole batches and the random weights they use.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from chain import crypto, zip215
from chain.crypto import SMALL_ORDER_KEYS, SigningKey, verify, verify_many
from chain.zip215 import BASE, L, P, Point, challenge, decode, point_add, scalar_multiply

from ._native import needs_extension as needs_extension_of

needs_extension = needs_extension_of(
    zip215.batches_in_c,
    "smartcity_native._ed25519",
    openssl=True,
    tests="compares the C batch check with its Python reference",
    otherwise="the reference then answers, which the other tests here cover",
)

SEEDS = [bytes([i + 1]) * 32 for i in range(3)]
KEYS = [SigningKey.from_seed(seed) for seed in SEEDS]


def decoded(encoded: bytes) -> Point:
    point = decode(encoded)
    assert point is not None
    return point


BASE_POINT = decoded(BASE)
# A point of order 8 (the torsion a cofactored check ignores and libsodium's does not)
TORSION = decoded(bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))


def encode(point: Point) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, P - 2, P)
    x, y = x * inverse % P, y * inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def sign_raw(secret: int, key: bytes, message: bytes, nonce: int) -> bytes:
    """An Ed25519 signature by the scalar `secret` for the encoding `key`, whatever point that
    encodes: how a signer makes signatures for a key with a small-order part."""
    r = encode(scalar_multiply(nonce, BASE_POINT))
    s = (nonce + challenge(r, key, message) * secret) % L
    return r + s.to_bytes(32, "little")


def libsodium_accepts(key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        crypto_sign_open(signature + message, key)
    except BadSignatureError:
        return False
    return True


def secret_scalar(key: SigningKey) -> int:
    """RFC 8032's secret scalar of a key: the clamped first half of SHA-512(seed)."""
    digest = hashlib.sha512(SEEDS[KEYS.index(key)]).digest()
    return (int.from_bytes(digest[:32], "little") & (2**254 - 8)) | 2**254


def with_torsion_r(key: SigningKey, message: bytes) -> bytes:
    """A signature whose R is [r]B plus a point of order 8, S made for that R: the cofactored
    equation holds, the cofactorless one (libsodium's) does not."""
    raw = bytes.fromhex(key.public_hex)
    nonce = int.from_bytes(hashlib.sha512(b"nonce" + message).digest(), "little") % L
    r = encode(point_add(scalar_multiply(nonce, BASE_POINT), TORSION))
    s = (nonce + challenge(r, raw, message) * secret_scalar(key)) % L
    return r + s.to_bytes(32, "little")


def mixed_order_key(secret: int) -> bytes:
    """The encoding of [secret]B plus a point of order 8: not of small order, so registrable."""
    return encode(point_add(scalar_multiply(secret, BASE_POINT), TORSION))


SPOILS = ["none", "message", "r_bit", "s_bit", "s_plus_l", "torsion_r", "small_r", "random"]


def spoiled(spoil: str, key: SigningKey, message: bytes) -> tuple[bytes, bytes, bytes]:
    raw = bytes.fromhex(key.public_hex)
    signature = key.sign(message)
    if spoil == "message":
        return raw, message + b"!", signature
    if spoil in ("r_bit", "s_bit"):
        flipped = bytearray(signature)
        flipped[3 if spoil == "r_bit" else 35] ^= 0x10
        return raw, message, bytes(flipped)
    if spoil == "s_plus_l":
        s = int.from_bytes(signature[32:], "little") + L
        return raw, message, signature[:32] + s.to_bytes(32, "little")
    if spoil == "torsion_r":
        return raw, message, with_torsion_r(key, message)
    if spoil == "small_r":
        return raw, message, sorted(SMALL_ORDER_KEYS)[0] + signature[32:]
    if spoil == "random":
        return raw, message, os.urandom(64)
    return raw, message, signature


@st.composite
def batches(draw: Any) -> list[tuple[bytes, bytes, bytes]]:
    size = draw(st.integers(min_value=1, max_value=5))
    return [
        spoiled(
            draw(st.sampled_from(SPOILS)), draw(st.sampled_from(KEYS)), draw(st.binary(max_size=64))
        )
        for _ in range(size)
    ]


# -- decoding -------------------------------------------------------------------------------

EDGE_ENCODINGS = [
    BASE,
    *sorted(SMALL_ORDER_KEYS),
    *[(P + i).to_bytes(32, "little") for i in range(19)],  # y of p or more: taken mod p
    *[((P + i) | 1 << 255).to_bytes(32, "little") for i in range(19)],
    (1 | 1 << 255).to_bytes(32, "little"),  # x = 0 with its sign bit set: ZIP-215 takes it
    b"\xff" * 32,
    bytes(32),
]


@needs_extension
@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(min_size=32, max_size=32), st.sampled_from(EDGE_ENCODINGS)))
def test_c_decodes_every_encoding_as_the_reference_does(encoded: bytes) -> None:
    from smartcity_native import _ed25519

    expected = decode(encoded)
    got = _ed25519.decode(encoded)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        x, y, _, _ = expected
        assert (int.from_bytes(got[0], "little"), int.from_bytes(got[1], "little")) == (x, y)


def test_non_canonical_encodings_decode_as_zip215_says() -> None:
    # y = p + 1 is y = 1: the identity's y, so x = 0 whatever the sign bit says
    assert decode((P + 1).to_bytes(32, "little")) == (0, 1, 1, 0)
    assert decode(((P + 1) | 1 << 255).to_bytes(32, "little")) == (0, 1, 1, 0)
    assert decode((1 | 1 << 255).to_bytes(32, "little")) == (0, 1, 1, 0)
    assert decode((2).to_bytes(32, "little")) is None  # y = 2 is on no point of the curve


# -- the batch check against its reference ---------------------------------------------------


@needs_extension
@settings(max_examples=60, deadline=None)
@given(batches(), st.data())
def test_c_batch_answers_as_the_reference_for_any_weights(
    items: list[tuple[bytes, bytes, bytes]], data: Any
) -> None:
    weights = data.draw(st.binary(min_size=16 * len(items), max_size=16 * len(items)))
    assert zip215.batch_holds(items, weights=weights) == zip215.batch_holds_reference(
        items, weights
    )


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SPOILS), st.sampled_from(KEYS), st.binary(max_size=64))
@example("torsion_r", KEYS[0], b"")
@example("s_plus_l", KEYS[1], b"x")
def test_a_signature_alone_and_in_an_honest_batch_get_one_answer(
    spoil: str, key: SigningKey, message: bytes
) -> None:
    item = spoiled(spoil, key, message)
    alone = zip215.holds(*item)
    assert alone == zip215.batch_holds_reference([item], bytes(16))
    honest = [spoiled("none", k, b"honest %d" % i) for i, k in enumerate(KEYS)]
    assert zip215.batch_holds([*honest, item]) == alone
    expected_alone = spoil in ("none", "torsion_r")
    assert alone == expected_alone


def test_libsodium_accepts_a_subset_of_the_rule() -> None:
    """Every answer differs only where libsodium refuses and the rule accepts: never the
    other way, so asking libsodium first cannot accept what the rule refuses."""
    for spoil in SPOILS:
        for key in KEYS:
            raw, message, signature = spoiled(spoil, key, b"subset")
            if libsodium_accepts(raw, message, signature):
                assert zip215.holds(raw, message, signature), spoil


def test_random_weights_catch_what_equal_weights_would_not() -> None:
    """Two forged signatures whose errors cancel: S + e in one, S - e in the other. With
    equal weights the sum of the S's is right and the batch would pass; with random ones it
    fails, and so does each signature on its own."""
    key = KEYS[0]
    raw = bytes.fromhex(key.public_hex)
    first, second = key.sign(b"one"), key.sign(b"two")
    s1 = (int.from_bytes(first[32:], "little") + 12345) % L
    s2 = (int.from_bytes(second[32:], "little") - 12345) % L
    forged = [
        (raw, b"one", first[:32] + s1.to_bytes(32, "little")),
        (raw, b"two", second[:32] + s2.to_bytes(32, "little")),
    ]
    assert zip215.batch_holds_reference(forged, bytes(32))  # equal weights: fooled
    assert not zip215.batch_holds(forged)
    assert not any(zip215.holds(*item) for item in forged)


# -- what nodes see: crypto.verify and verify_many ------------------------------------------


def test_a_torsion_moved_r_is_valid_under_the_rule_alone_and_in_a_batch() -> None:
    key = KEYS[1]
    signature = with_torsion_r(key, b"moved")
    raw = bytes.fromhex(key.public_hex)
    assert not libsodium_accepts(raw, b"moved", signature)
    assert verify(key.public_hex, b"moved", signature)
    honest = [(k.public_hex, b"m%d" % i, k.sign(b"m%d" % i)) for i, k in enumerate(KEYS)]
    assert verify_many([*honest, (key.public_hex, b"moved", signature)]) == [True] * 4


def test_a_key_with_a_small_order_part_gets_one_answer_everywhere() -> None:
    """A key of mixed order is not of small order, so it can be registered. Its signatures
    hold under the cofactored rule; libsodium refuses those whose challenge is not a multiple
    of 8. The node's answer is the rule's, alone or in a batch."""
    secret = 0x1234567890ABCDEF
    raw = mixed_order_key(secret)
    assert raw not in SMALL_ORDER_KEYS
    checks = [
        (raw.hex(), b"mixed %d" % i, sign_raw(secret, raw, b"mixed %d" % i, 99 + i))
        for i in range(8)
    ]
    refused_by_libsodium = [not libsodium_accepts(raw, m, s) for _, m, s in checks]
    assert any(refused_by_libsodium)
    assert [verify(*check) for check in checks] == [True] * 8
    assert verify_many(checks) == [True] * 8


def test_one_forgery_in_a_batch_is_refused_and_only_it() -> None:
    checks = [(k.public_hex, b"tx %d" % i, k.sign(b"tx %d" % i)) for i, k in enumerate(KEYS * 20)]
    key, message, signature = checks[17]
    checks[17] = (key, message + b"?", signature)
    answers = verify_many(checks)
    assert answers == [i != 17 for i in range(len(checks))]


def test_without_the_extension_nodes_answer_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = []
    for i, spoil in enumerate(SPOILS):
        raw, message, signature = spoiled(spoil, KEYS[i % 3], b"same %d" % i)
        checks.append((raw.hex(), message, signature))
    with_extension = verify_many(checks)
    monkeypatch.setattr(zip215, "_c", None)
    monkeypatch.setattr(zip215, "batches_in_c", False)
    monkeypatch.setattr(crypto, "_batches", None)
    assert verify_many(checks) == with_extension == [verify(*c) for c in checks]
    assert with_extension == [s in ("none", "torsion_r") for s in SPOILS]


def test_malformed_items_are_refused_not_raised() -> None:
    key = KEYS[0]
    raw = bytes.fromhex(key.public_hex)
    signature = key.sign(b"m")
    assert not zip215.batch_holds([(raw[:31], b"m", signature)])
    assert not zip215.batch_holds([(raw, b"m", signature[:63])])
    for odd in (bytearray(signature), memoryview(signature), signature.hex()):
        assert not zip215.batch_holds([(raw, b"m", odd)])  # type: ignore[list-item]
        assert not zip215.batch_holds([(raw, odd, signature)])  # type: ignore[list-item]
    assert zip215.batch_holds([])


class _Counting:
    """Counts the batch checks and the signatures checked on their own."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: list[int] = []
        self.alone = 0
        batch_holds, holds = zip215.batch_holds, zip215.holds

        self._inside_holds = False

        def counted_batch(items: Any, **kw: Any) -> bool:
            if not self._inside_holds:  # holds is a batch of one: counted as alone
                self.batches.append(len(items))
            return batch_holds(items, **kw)

        def counted_holds(*item: Any) -> bool:
            self.alone += 1
            self._inside_holds = True
            try:
                return holds(*item)
            finally:
                self._inside_holds = False

        monkeypatch.setattr(zip215, "batch_holds", counted_batch)
        monkeypatch.setattr(zip215, "holds", counted_holds)


def _honest_checks(count: int) -> list[tuple[str, bytes, bytes]]:
    return [(k.public_hex, b"tx %d" % i, k.sign(b"tx %d" % i)) for i, k in enumerate(KEYS * count)]


@needs_extension
def test_a_forgery_among_64_costs_a_few_batch_checks_not_64_single_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = _honest_checks(22)[:64]
    key, message, signature = checks[41]
    checks[41] = (key, message + b"?", signature)
    counting = _Counting(monkeypatch)
    assert verify_many(checks) == [i != 41 for i in range(64)]
    # the whole; its left 32 hold, so the right 32 are split unchecked; their left 16 fail and
    # their right 16 hold; of the failing 16 the left 8 hold, and the right 8 are checked one
    # at a time (libsodium), the rule's own check only for the forgery, which libsodium refused
    assert counting.batches == [64, 32, 16, 16, 8]
    assert counting.alone == 1


@needs_extension
def test_forgeries_in_both_halves_are_checked_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = _honest_checks(11)[:32]
    for at in (3, 29):
        key, message, _ = checks[at]
        checks[at] = (key, message, bytes(64))
    counting = _Counting(monkeypatch)
    assert verify_many(checks) == [i not in (3, 29) for i in range(32)]
    assert counting.batches == [32, 16, 16]
    assert counting.alone == 2  # libsodium opened the 30 good ones


@pytest.mark.parametrize("kind", [bytearray, memoryview, type("Bytes", (bytes,), {})])
def test_a_signature_gets_one_answer_whatever_bytes_type_carries_it(kind: Any) -> None:
    key = KEYS[2]
    for message, signature in ((b"moved", with_torsion_r(key, b"moved")), (b"m", key.sign(b"m"))):
        expected = verify(key.public_hex, message, signature)
        assert expected
        assert verify(key.public_hex, kind(message), signature)
        assert verify(key.public_hex, message, kind(signature))
        assert verify_many([(key.public_hex, kind(message), signature)] * 2) == [True, True]


@pytest.mark.parametrize("odd", [None, 7, "ab" * 64, [0] * 64])
def test_what_is_not_a_key_or_a_signature_is_refused_not_raised(odd: Any) -> None:
    key = KEYS[0]
    signature = key.sign(b"m")
    assert not verify(odd, b"m", signature)
    assert not verify(key.public_hex, b"m", odd)
    assert verify_many([(odd, b"m", signature), (key.public_hex, b"m", odd)]) == [False, False]


def test_weights_of_the_wrong_length_are_a_callers_error() -> None:
    item = spoiled("none", KEYS[0], b"m")
    with pytest.raises(ValueError, match="2 items need 32 bytes of weights"):
        zip215.batch_holds([item, item], weights=bytes(16))
