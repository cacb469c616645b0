"""A block's SHA-256 hashing in C (smartcity_native._hashes) against the Python code.

`chain.merkle.root` (the transactions' and receipts' roots in every header) and
`CommittedState.apply_block` (each written key's path and value hash: the state root, and what
the store keeps) hand their work to the C first on a SHA-256 chain. A node with the extension and
one without must agree on every byte, or the chain forks between them; what the C declines
(None) must be handed back, not half done."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chain.merkle as merkle
import chain.state as state
from chain.encoding import canonical
from chain.smt import Tree
from chain.state import CommittedState

from ._native import native_module_or_skip

_hashes = native_module_or_skip(
    "smartcity_native._hashes",
    openssl=True,
    tests="these tests hold the C Merkle roots and state-key hashes to the Python code",
    otherwise="without it the Python code hashes every block, which the rest of the suite tests",
)

_leaves = st.lists(st.binary(max_size=80), max_size=300)
# State keys from every plane but the surrogates (StateView.put refuses keys that are not
# printable); values as contracts write them, or None for a deleted key
_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
_values = (
    st.none()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text()
    | st.dictionaries(st.text(max_size=4), st.text())
)


def python_root(leaves: list[bytes]) -> bytes:
    leaf_hashes = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    return merkle.root_from_leaf_hashes(leaf_hashes)


@settings(max_examples=200, deadline=None)
@given(_leaves)
def test_the_c_root_is_rfc_6962s(leaves: list[bytes]) -> None:
    assert _hashes.merkle_root(leaves) == python_root(leaves)
    assert _hashes.merkle_root(tuple(leaves)) == python_root(leaves)
    assert merkle.root(leaves) == python_root(leaves)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 7, 8, 9, 1023, 1024, 1025, 2500])
def test_the_c_root_at_every_shape_of_tree(size: int) -> None:
    """Each width: the odd last node promoted at every level, the powers of two and past them."""
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    assert _hashes.merkle_root(leaves) == python_root(leaves)


def test_the_c_root_declines_what_is_not_plain_bytes_and_the_python_code_takes_it() -> None:
    leaves: list[Any] = [b"a", bytearray(b"b"), memoryview(b"c")]
    assert _hashes.merkle_root(leaves) is None
    assert _hashes.merkle_root(iter([b"a"])) is None
    assert merkle.root(leaves) == python_root([b"a", b"b", b"c"])


def test_other_suites_hash_in_python() -> None:
    """An sm2-sm3 chain's roots are SM3's: the C, SHA-256 only, is not asked."""
    sm3 = hashlib.sha3_256  # any hasher but SHA-256 stands for it here
    leaves = [b"x", b"y", b"z"]
    expected = merkle.root_from_leaf_hashes([sm3(b"\x00" + leaf).digest() for leaf in leaves], sm3)
    assert merkle.root(leaves, sm3) == expected


def applied(changes: dict[tuple[str, str], Any], *, native: bool) -> tuple[bytes, Any]:
    """A fresh state's root and stored rows after `changes`, with or without the C hashing."""
    saved = state._native_hashes
    state._native_hashes = saved if native else None
    try:
        base = CommittedState(values={}, tree=Tree())
        encoded = {k: canonical(v) for i, (k, v) in enumerate(changes.items()) if i % 2 and v}
        tree, stored = base.apply_block(changes, encoded)
    finally:
        state._native_hashes = saved
    return tree.root_hash, stored


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.tuples(_names, _names), _values, max_size=40))
def test_the_c_state_hashes_are_the_python_codes(changes: dict[tuple[str, str], Any]) -> None:
    root, stored = applied(changes, native=True)
    assert (root, stored) == applied(changes, native=False)
    assert list(stored) == list(changes)  # the store writes them in the block's order


def test_the_c_state_hashes_decline_keys_that_are_not_pairs_of_str() -> None:
    assert _hashes.state_hashes([("ns", "k", "extra")], [b"1"]) is None
    assert _hashes.state_hashes([("ns", b"k")], [b"1"]) is None
    assert _hashes.state_hashes([("ns", "k")], ["1"]) is None
    with pytest.raises(ValueError, match="as many texts as keys"):
        _hashes.state_hashes([("ns", "k")], [])
    with pytest.raises(UnicodeEncodeError):  # as str.encode() refuses it
        _hashes.state_hashes([("ns", "\ud800")], [b"1"])
