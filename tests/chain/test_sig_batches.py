"""Ed25519 checks in batches (smartcity_native's `_sigs`) answer exactly as one check at a time.

A node verifies a batch of transactions with the GIL released once for the batch; every node
must still accept and refuse exactly the signatures `chain.crypto.verify` does, or two
validators could disagree about a block. Hypothesis mixes good signatures with every way of
spoiling one (another message, a flipped bit, another key, a small-order key, a non-canonical
S, wrong lengths, bad hex) and the batch must give verify's answer for each.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import crypto
from chain.crypto import SMALL_ORDER_KEYS, SigningKey, verify, verify_many
from chain.tx import VERIFIED, SignatureCache, Tx, sign_tx, tx_from_json, verify_signatures
from chain.zip215 import L

from ._native import needs_extension as needs_extension_of

# The answers below hold with or without the extension (without it, verify_many checks one
# at a time); only the tests of the extension itself need it built
needs_extension = needs_extension_of(
    crypto.BATCHES_IN_C,
    "smartcity_native._sigs",
    openssl=False,
    tests="checks the C batch opener's own refusals",
    otherwise="signatures are then checked one at a time, which every other test here covers",
)

KEYS = [SigningKey.from_seed(bytes([i]) * 32) for i in range(3)]
# L, the group order: S + L is the same scalar written non-canonically, which libsodium refuses


def _non_canonical(signature: bytes) -> bytes | None:
    s = int.from_bytes(signature[32:], "little") + L
    return signature[:32] + s.to_bytes(32, "little") if s < 2**256 else None


@st.composite
def _check(draw: Any) -> tuple[str, bytes, bytes]:
    key = draw(st.sampled_from(KEYS))
    message = draw(st.binary(max_size=300))
    signature = key.sign(message)
    public_hex = key.public_hex
    spoil = draw(
        st.sampled_from(
            [
                *["none", "message", "bit", "key", "small", "canonical", "short", "long", "hex"],
                *["bytearray", "memoryview", "ints", "text"],
            ]
        )
    )
    if spoil == "message":
        message = message + b"!"
    elif spoil == "bit":
        at = draw(st.integers(0, 8 * len(signature) - 1))
        flipped = bytearray(signature)
        flipped[at // 8] ^= 1 << (at % 8)
        signature = bytes(flipped)
    elif spoil == "key":
        public_hex = draw(st.sampled_from([k.public_hex for k in KEYS if k is not key]))
    elif spoil == "small":
        public_hex = draw(st.sampled_from(sorted(SMALL_ORDER_KEYS))).hex()
    elif spoil == "canonical":
        signature = _non_canonical(signature) or signature[:63]
    elif spoil == "short":
        signature = signature[: draw(st.integers(0, 63))]
    elif spoil == "long":
        signature = signature + b"\x00"
    elif spoil == "hex":
        public_hex = draw(st.sampled_from([public_hex.upper(), public_hex[:-2], "zz" * 32, ""]))
    # Not bytes: whatever verify makes of them, the batch must make the same
    elif spoil == "bytearray":
        signature = bytearray(signature)  # type: ignore[assignment]
    elif spoil == "memoryview":
        message = memoryview(message)  # type: ignore[assignment]
    elif spoil == "ints":
        signature = list(signature) if draw(st.booleans()) else [256] * 64  # type: ignore[assignment]
    elif spoil == "text":
        message = message.hex()  # type: ignore[assignment]
    return public_hex, message, signature


@settings(max_examples=300, deadline=None)
@given(st.lists(_check(), max_size=40))
def test_a_batch_answers_as_verify_answers_each(checks: list[tuple[str, bytes, bytes]]) -> None:
    assert verify_many(checks) == [verify(*check) for check in checks]


def test_spoiled_signatures_are_refused_and_good_ones_accepted() -> None:
    key = KEYS[0]
    good = key.sign(b"transfer 10")
    non_canonical = _non_canonical(good)
    assert non_canonical is not None or good[63] & 0xF0  # S + L fits unless S's top bits are set
    checks = [
        (key.public_hex, b"transfer 10", good),
        (key.public_hex, b"transfer 11", good),
        (KEYS[1].public_hex, b"transfer 10", good),
        (key.public_hex, b"transfer 10", good[:-1]),
        (next(iter(SMALL_ORDER_KEYS)).hex(), b"transfer 10", good),
    ]
    if non_canonical is not None:
        checks.append((key.public_hex, b"transfer 10", non_canonical))
    assert verify_many(checks) == [True] + [False] * (len(checks) - 1)


def test_without_the_extension_the_same_answers_come_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = KEYS[2]
    checks = [(key.public_hex, b"a", key.sign(b"a")), (key.public_hex, b"b", key.sign(b"a"))]
    monkeypatch.setattr(crypto, "_batches", None)
    assert verify_many(checks) == [True, False]


@needs_extension
def test_the_extension_refuses_what_it_cannot_read_with_a_reason() -> None:
    from smartcity_native import _sigs

    key = KEYS[0]
    raw = bytes.fromhex(key.public_hex)
    signed = key.sign(b"m") + b"m"
    assert _sigs.open_many([raw], [signed]) == b"\x01"
    assert _sigs.open_many([], []) == b""
    with pytest.raises(ValueError, match="as many signed messages as keys"):
        _sigs.open_many([raw], [])
    with pytest.raises(ValueError, match="key 1 is not 32 bytes"):
        _sigs.open_many([raw, raw[:31]], [signed, signed])
    with pytest.raises(ValueError, match="signed message 0 is not bytes of 64 or more"):
        _sigs.open_many([raw], [signed[:63]])
    text: Any = "text"  # what a caller outside chain.crypto might hand in
    with pytest.raises(ValueError, match="signed message 0"):
        _sigs.open_many([raw], [text])
    with pytest.raises(TypeError):
        _sigs.open_many(1, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="address as an int"):
        _sigs.bind(text)


def _anchors(key: SigningKey, count: int) -> list[Tx]:
    """Fresh anchor transactions signed by `key` (none verified yet in this process)."""
    return [
        sign_tx(
            key,
            chain_id="batch-test",
            contract="anchors",
            method="anchor",
            args={"root": os.urandom(32).hex(), "count": 1, "label": "t"},
            expiry_height=10,
        )
        for _ in range(count)
    ]


def _forged(txs: list[Tx], *, by: SigningKey) -> list[Tx]:
    """The same transactions signed by another key than their sender's."""
    return [tx_from_json({**tx.to_json(), "sig": by.sign(tx.signed_bytes()).hex()}) for tx in txs]


def test_a_node_remembers_only_the_transactions_whose_signatures_hold() -> None:
    txs = _anchors(KEYS[1], 150)  # above the size that goes to the worker pool
    forged = _forged(txs[::7], by=KEYS[0])
    for tx in txs + forged:
        assert tx.hash not in VERIFIED
    assert verify_signatures(txs + forged) == [True] * len(txs) + [False] * len(forged)
    assert all(tx.hash in VERIFIED for tx in txs)
    assert not any(tx.hash in VERIFIED for tx in forged)


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=200))
@settings(max_examples=60, deadline=None)
def test_a_full_signature_memory_forgets_its_oldest_first(capacity: int, added: int) -> None:
    """A node's memory of checked signatures stays at its capacity however long it runs, and
    what it forgets is what it checked longest ago (checked again if it comes back)."""
    memory = SignatureCache(capacity=capacity)
    digests = [f"{i:064x}" for i in range(added)]
    for digest in digests:
        memory.add(digest)
    kept = digests[-capacity:]
    assert len(memory) == len(kept)
    assert all(d in memory for d in kept)
    assert not any(d in memory for d in digests[: len(digests) - len(kept)])


def test_each_signature_is_checked_once_and_a_batch_in_c_none_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the extension no signature of an Ed25519 batch goes through PyNaCl's one-at-a-time
    binding (what the GIL is taken back after); without it each goes through it once. Either
    way a forged one is not checked again after it was refused, by the door's check_tx or when
    it is sent again: a forgery costs a node one check."""
    calls = 0
    single = crypto.crypto_sign_open  # type: ignore[attr-defined]

    def counted(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return single(*args)

    monkeypatch.setattr(crypto, "crypto_sign_open", counted)
    txs = _anchors(KEYS[0], 100)
    forged = _forged(txs, by=KEYS[1])
    for size in (10, 200):  # inline, and on the worker pool
        mixed = txs[: size // 2] + forged[: size // 2]
        answers = verify_signatures(mixed)
        assert answers == [True] * (size // 2) + [False] * (size // 2)
    # What the door's check_tx asks next, and a forgery sent again: answered from memory
    assert all(tx.has_valid_signature() for tx in txs)
    assert not any(tx.has_valid_signature() for tx in forged)
    assert verify_signatures(forged[:3]) == [False] * 3
    assert calls == (0 if crypto.BATCHES_IN_C else len(txs) + len(forged))
