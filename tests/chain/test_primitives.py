"""Canonical encoding, RFC 6962 Merkle trees and the sparse Merkle state tree."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import merkle, smt
from chain.block import Event, Receipt
from chain.crypto import SigningKey, load_key, save_key, verify
from chain.encoding import canonical, from_hex, parse_json, read_canonical_object
from chain.errors import EncodingError, ProofError
from chain.state import CommittedState, key_hash, value_hash


def test_canonical_json_follows_rfc8785() -> None:
    # RFC 8785 section 3.2.2 sorts by UTF-16 code units and formats numbers as ECMAScript does
    assert canonical({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'
    assert canonical({"\u20ac": 1, "\r": 2, "1": 3}) == '{"\\r":2,"1":3,"\u20ac":1}'.encode()
    assert canonical(1e21) == b"1e+21"
    assert canonical(0.1) == b"0.1"


def test_parse_json_refuses_duplicate_keys_and_nan() -> None:
    with pytest.raises(EncodingError, match="duplicate member 'a'"):
        parse_json(b'{"a":1,"a":2}')
    with pytest.raises(EncodingError, match="NaN"):
        parse_json(b'{"a":NaN}')


def test_hex_must_be_lowercase_and_exact_length() -> None:
    assert from_hex("00ff", 2) == b"\x00\xff"
    with pytest.raises(EncodingError, match="lowercase hex"):
        from_hex("00FF")
    with pytest.raises(EncodingError, match="must be 3 bytes"):
        from_hex("00ff", 3)


def test_key_files_are_owner_only_and_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = SigningKey.generate()
    path = tmp_path / "org" / "key.jwk"
    save_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key(path)
    assert loaded.public_hex == key.public_hex
    assert verify(key.public_hex, b"m", loaded.sign(b"m"))
    with pytest.raises(FileExistsError):
        save_key(key, path)
    os.chmod(path, 0o644)
    with pytest.raises(EncodingError, match="readable by others"):
        load_key(path)


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the RFC states it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(
        b"\x01" + _reference_root(leaves[:k]) + _reference_root(leaves[k:])
    ).digest()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33])
def test_merkle_root_and_every_audit_path(size: int) -> None:
    leaves = [bytes([i]) * 3 for i in range(size)]
    root = merkle.root(leaves)
    assert root == _reference_root(leaves)
    hashed = [merkle.leaf_hash(leaf) for leaf in leaves]
    for index in range(size):
        path = merkle.audit_path(hashed, index)
        assert merkle.root_from_path(hashed[index], index, size, path) == root
        if path:
            with pytest.raises(ProofError):
                merkle.root_from_path(hashed[index], index, size, [*path, path[0]])
            assert (
                merkle.root_from_path(hashed[index], index, size, [b"\0" * 32, *path[1:]]) != root
            )
        if size > 1:
            wrong = (index + 1) % size
            with contextlib.suppress(ProofError):
                assert merkle.root_from_path(hashed[index], wrong, size, path) != root


def test_merkle_path_outside_tree_is_refused() -> None:
    with pytest.raises(ProofError, match="outside a tree"):
        merkle.root_from_path(b"\0" * 32, 3, 3, [])


keys_st = st.lists(st.binary(min_size=1, max_size=6), min_size=0, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(keys_st, keys_st, st.randoms(use_true_random=False))
def test_sparse_tree_root_depends_only_on_contents(
    first: list[bytes], second: list[bytes], rnd
) -> None:  # type: ignore[no-untyped-def]
    def entry(k: bytes, tag: bytes = b"v") -> tuple[bytes, bytes]:
        return hashlib.sha256(k).digest(), hashlib.sha256(tag + k).digest()

    tree = smt.Tree()
    for k in first:
        tree = tree.update([entry(k)])
    deleted = [k for k in first if rnd.random() < 0.5]
    tree = tree.update([(entry(k)[0], None) for k in deleted])
    tree = tree.update([entry(k, b"w") for k in second])
    final = {entry(k)[0]: entry(k)[1] for k in first if k not in deleted}
    final.update(dict(entry(k, b"w") for k in second))
    assert tree.root_hash == smt.Tree.from_entries(final.items()).root_hash
    for k in set(first) | set(second):
        path = entry(k)[0]
        proof = tree.prove(path)
        assert smt.compute_root(path, proof) == tree.root_hash
        present = proof.leaf is not None and proof.leaf.key_hash == path
        assert present == (path in final)


def test_state_proofs_show_presence_and_absence() -> None:
    state = CommittedState.empty()
    changes = {("anchors", "a"): {"x": 1}, ("anchors", "b"): "two", ("membership", "a"): [1]}
    tree, stored = state.apply_block(changes, {})
    assert stored[("anchors", "b")] == ('"two"', value_hash("two").hex())
    state.commit(changes, tree)
    present = state.prove("anchors", "b")
    assert present.leaf is not None and present.leaf.value_hash == value_hash("two")
    assert smt.compute_root(key_hash("anchors", "b"), present) == state.root
    absent = state.prove("anchors", "zzz")
    assert absent.leaf is None or absent.leaf.key_hash != key_hash("anchors", "zzz")
    assert smt.compute_root(key_hash("anchors", "zzz"), absent) == state.root
    # the same key in another namespace is another leaf
    assert key_hash("anchors", "a") != key_hash("membership", "a")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-4, 9.999e-5, 1e-6, 1e16, 1e21, 2.0**53, 2.0**53 + 2, -0.0, 5e-324]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fast_canonical_path_matches_rfc8785(value: Any) -> None:
    import rfc8785

    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(EncodingError):
            canonical(value)
        return
    assert canonical(value) == expected


def _encodings(value: dict[str, Any]) -> list[bytes]:
    """Ways a peer might write a JSON object: RFC 8785 and near misses of it."""
    import json

    import orjson

    out = [
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS),
        orjson.dumps(value),
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(value).encode(),
    ]
    with contextlib.suppress(EncodingError):
        out.append(canonical(value))
    return out


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_an_object_read_as_canonical_is_its_own_canonical_form(value: dict[str, Any]) -> None:
    """What the fast reader takes as canonical re-encodes to exactly the bytes it read; and a
    value of plain strings, safe integers and plain floats is taken (not left to the slow
    path every time)."""
    import json

    for raw in _encodings(value):
        read = read_canonical_object(raw)
        if read is not None:
            assert canonical(read) == raw
            assert read == json.loads(raw)
    with contextlib.suppress(EncodingError):
        raw = canonical(value)
        read = read_canonical_object(raw)
        simple = (str, bool, type(None))
        if (
            all(not k or max(k) < "\ud800" for k in value)
            and all(
                isinstance(v, simple) or (type(v) is int and abs(v) < 2**53) for v in value.values()
            )
            and not any("\ud800" <= c <= "\udfff" for k, v in value.items() for c in k + str(v))
        ):
            assert read == value


def test_near_canonical_objects_are_not_read_as_canonical() -> None:
    assert read_canonical_object(b'{"a":1,"b":"x"}') == {"a": 1, "b": "x"}
    for raw in (
        b'{"b":"x","a":1}',  # unsorted
        b'{"a": 1,"b":"x"}',  # whitespace
        b'{"a":1,"a":1,"b":"x"}',  # a duplicate member
        b'{"a":1.0,"b":"x"}',  # an integral float (RFC 8785: 1)
        b'{"a":1e-7,"b":"x"}',  # not plain (the C encoder writes 1e-07): the strict path
        b'{"a":9007199254740993,"b":"x"}',  # past 2^53
        b'{"a":1,"b":"\\u00e9"}',  # an escape RFC 8785 does not write
        b'{"a":1,"b":"\\ud800"}',  # a lone surrogate
        b'{"\xf0\x9f\x98\x80":1,"\xee\x80\x80":2}',  # UTF-16 order, not code points
        b"[1]",
        b"{",
    ):
        assert read_canonical_object(raw) is None, raw


def test_canonical_keys_beyond_the_bmp_sort_by_utf16_units() -> None:
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert canonical(value) == '{"\U0001f600":1,"\ufb01":2}'.encode()


def test_a_state_value_is_kept_in_memory_as_it_reads_back_after_a_restart() -> None:
    """The store keeps a value's canonical text, where 2.0 is written 2: a running node must
    hold the integer too, or a contract formatting it would run differently after a restart."""
    import json

    from chain.state import CommittedState, Overlay, StateView

    overlay = Overlay(CommittedState.empty())
    StateView(overlay, "ns").put("k", {"n": 2.0, "f": 1.5, "z": -0.0})
    kept = overlay.get("ns", "k")
    assert repr(kept) == repr(json.loads(overlay.encoded[("ns", "k")]))
    assert (type(kept["n"]), type(kept["f"]), kept["z"]) == (int, float, 0)


receipts = st.builds(
    Receipt,
    tx=st.text(max_size=8) | st.sampled_from(["ab" * 32]),
    height=st.integers(0, 2**53 - 1) | st.sampled_from([2**53, -(2**60)]),
    index=st.integers(0, 10_000),
    ok=st.booleans(),
    code=st.none() | st.text(max_size=8),
    error=st.none() | st.text(max_size=12),
    events=st.lists(
        st.builds(
            Event,
            contract=st.text(max_size=6),
            name=st.text(max_size=6),
            data=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
        ),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=400, deadline=None)
@given(receipts)
def test_a_receipt_is_encoded_as_the_canonical_form_of_its_json(receipt: Receipt) -> None:
    """The receipts root and the stored receipt: the direct encoding of a receipt gives the
    bytes rfc8785 gives its JSON, and what rfc8785 refuses is refused."""
    import rfc8785

    import chain.block

    for writer in (True, False):  # canonical() on its JSON (the C writer's), and the f-strings
        fresh = Receipt(*(getattr(receipt, f) for f in receipt.__dataclass_fields__))
        with mock.patch.object(chain.block, "NATIVE_WRITER", writer):
            try:
                expected = rfc8785.dumps(receipt.to_json())
            except rfc8785.CanonicalizationError:
                with pytest.raises(EncodingError):
                    fresh.encode()
                continue
            assert fresh.encode() == expected
