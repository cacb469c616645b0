"""The sparse Merkle tree in C (smartcity_native) is the Python reference's tree: the same
root, the same leaves and the same proof for every key.

chain.smt keeps its tree in C under SHA-256 when the extension is installed. Roots are what a
chain's state root, proofs and every node's agreement rest on, so the two must never differ:
Hypothesis drives both through the same sequences of sets and deletes, with keys drawn to share
long prefixes (deep splits, leaves pushed down a path, collapses on delete). A root hash commits
to the tree's whole shape, and every key's proof (present or absent) is compared too.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chain import smt

from ._native import native_module_or_skip

_smt = native_module_or_skip(
    "smartcity_native._smt",
    openssl=True,
    tests="these tests hold the C tree to the Python one",
    otherwise="without it every process runs the Python tree, which the rest of the suite tests",
)


def _python_update(root: smt.Node, changes: dict[bytes, bytes | None]) -> smt.Node:
    keys = sorted(changes)
    return smt._update(root, 0, keys, [changes[k] for k in keys], 0, len(keys))


def _native_update(tree: Any, changes: dict[bytes, bytes | None]) -> Any:
    keys = sorted(changes)
    return tree.update(keys, [changes[k] for k in keys])


def _same(native: Any, python: smt.Node, probes: list[bytes]) -> None:
    """The C tree and the Python one hold the same leaves, root and proofs."""
    assert native.root_hash == smt.node_hash(python)
    assert native.items() == smt.Tree(python).leaves()
    for key in probes:
        siblings, leaf = native.prove(key)
        expected = smt.Tree(python).prove(key)
        assert siblings == expected.siblings
        assert leaf == (
            None if expected.leaf is None else (expected.leaf.key_hash, expected.leaf.value_hash)
        )


# Keys from a small alphabet of prefixes so that many share their first bytes (and bits): the
# interesting shapes of a sparse tree are where paths run together
_prefixes = st.sampled_from([b"", b"\x00" * 31, b"\xff" * 30, b"\x80\x00", b"\x7f\xff\xff"])
_key = st.builds(
    lambda prefix, tail: (prefix + tail)[:32].ljust(32, b"\x00"),
    _prefixes,
    st.binary(min_size=0, max_size=32),
)
_value = st.one_of(st.none(), st.binary(min_size=32, max_size=32))
_block = st.dictionaries(_key, _value, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_block, min_size=1, max_size=8))
def test_c_and_python_build_the_same_tree(blocks: list[dict[bytes, bytes | None]]) -> None:
    python: smt.Node = None
    native = _smt.Tree()
    seen: set[bytes] = set()
    for changes in blocks:
        older, older_root, older_items = native, native.root_hash, native.items()
        python = _python_update(python, changes)
        native = _native_update(native, changes)
        seen.update(changes)
        _same(native, python, [*sorted(seen), bytes(32), b"\xff" * 32])
        # The tree updated is left as it was (the new one shares its untouched nodes)
        assert (older.root_hash, older.items()) == (older_root, older_items)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_key, st.binary(min_size=32, max_size=32), max_size=60))
def test_from_entries_matches_the_python_build(entries: dict[bytes, bytes]) -> None:
    ordered = sorted(entries.items())
    tree = smt.Tree.from_entries(entries.items())
    assert tree.native is not None  # the chain's tree is the C one where it is installed
    assert tree.root_hash == smt.node_hash(smt._build(0, ordered))
    assert tree.leaves() == ordered


def _halves(rng: random.Random, left: int, right: int) -> list[bytes]:
    """Keys `left` of them under the root's left side (first bit 0), `right` under its right."""
    keys = []
    for count, top in ((left, 0x00), (right, 0x80)):
        for _ in range(count):
            key = bytearray(rng.randbytes(32))
            key[0] = (key[0] & 0x7F) | top
            keys.append(bytes(key))
    return keys


# A batch with at least PARALLEL_MIN_KEYS (256) keys on each side of the root is made on two
# threads: sizes around that bound, on both sides
_side = st.sampled_from([0, 1, 255, 256, 257, 2500])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), _side, _side, _side, _side)
@example(seed=0, left=2500, right=2500, more_left=2500, more_right=2500)  # both on two threads
def test_a_large_batch_made_on_two_threads_is_the_python_trees(
    seed: int, left: int, right: int, more_left: int, more_right: int
) -> None:
    """Built from nothing (build), then updated (update) with sets and deletes on both sides."""
    rng = random.Random(seed)
    first: dict[bytes, bytes | None] = {k: rng.randbytes(32) for k in _halves(rng, left, right)}
    python = _python_update(None, first)
    native = _native_update(_smt.Tree(), first)
    assert native.root_hash == smt.node_hash(python)
    known = sorted(first)
    second: dict[bytes, bytes | None] = {
        k: rng.randbytes(32) for k in _halves(rng, more_left, more_right)
    }
    second.update(dict.fromkeys(rng.sample(known, len(known) // 3)))  # deletes
    second.update({k: rng.randbytes(32) for k in rng.sample(known, len(known) // 4)})  # changes
    python = _python_update(python, second)
    native = _native_update(native, second)
    _same(native, python, rng.sample(sorted(second), min(40, len(second))))


def test_a_grown_tree_proves_every_key_against_its_root() -> None:
    digest = lambda i: hashlib.sha256(i.to_bytes(4)).digest()  # noqa: E731
    tree = smt.Tree()
    for start in range(0, 3_000, 500):
        tree = tree.update((digest(i), digest(i + 1)) for i in range(start, start + 500))
    tree = tree.update((digest(i), None) for i in range(0, 3_000, 7))  # deletes
    assert tree.native is not None
    for i in range(0, 3_000, 13):
        proof = tree.prove(digest(i))
        assert smt.compute_root(digest(i), proof) == tree.root_hash
        present = proof.leaf is not None and proof.leaf.key_hash == digest(i)
        assert present == (i % 7 != 0)  # an absent key's path ends empty or at another's leaf


def test_a_tree_carried_from_one_implementation_to_the_other_keeps_its_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that switches (`use_implementation`) updates the trees it holds with the
    other implementation: each is carried over leaf by leaf, the same tree."""
    digest = lambda i: hashlib.sha256(i.to_bytes(4)).digest()  # noqa: E731
    monkeypatch.setattr(smt, "_native_tree", None)
    python = smt.Tree().update((digest(i), digest(-i % 97)) for i in range(300))
    monkeypatch.setattr(smt, "_native_tree", _smt.Tree)
    native = smt.Tree().update((digest(i), digest(-i % 97)) for i in range(300))
    assert python.native is None and native.native is not None and python == native
    change = [(digest(5), None), (digest(1_000), digest(1))]
    carried = python.update(change)  # Python-made, updated in C
    monkeypatch.setattr(smt, "_native_tree", None)
    back = native.update(change)  # C-made, updated in Python
    assert carried.native is not None and back.native is None
    assert carried.root_hash == back.root_hash and carried.leaves() == back.leaves()


@pytest.mark.parametrize(
    ("keys", "values", "error", "message"),
    [
        ([b"short"], [None], TypeError, "key 0 is not a 32-byte hash"),
        (["text" * 8], [None], TypeError, "key 0 is not a 32-byte hash"),
        ([bytes(32)], ["text"], TypeError, "value 0 is neither a 32-byte hash nor None"),
        ([bytes(32)], [b"v"], TypeError, "value 0 is neither a 32-byte hash nor None"),
        ([bytes(32), bytes(32)], [None, None], ValueError, "sorted and unique"),
        ([b"\x01" * 32, bytes(32)], [None, None], ValueError, "sorted and unique"),
        ([bytes(32)], [], ValueError, "keys and values differ in length"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(
    keys: list, values: list, error: type[Exception], message: str
) -> None:
    tree = _smt.Tree().update([b"\x05" * 32], [b"\x06" * 32])
    with pytest.raises(error, match=message):
        tree.update(keys, values)
    assert tree.items() == [(b"\x05" * 32, b"\x06" * 32)]  # the tree it was called on is unchanged
    with pytest.raises(TypeError, match="a key is a 32-byte hash"):
        tree.prove(b"short")
    not_lists: Any = (b"k" * 32,)
    with pytest.raises(TypeError):
        tree.update(not_lists, not_lists)  # lists only


def test_an_update_lets_other_threads_run_python_while_it_builds() -> None:
    """The nodes are built with the GIL released: the thread that asked waits, the others go
    on. While one thread updates a large batch, this one counts; with the GIL held through the
    build (as the tuple tree's update did) it could not count at all until the update ended."""
    keys = sorted(os.urandom(32) for _ in range(150_000))
    values = [os.urandom(32) for _ in keys]
    tree = _smt.Tree()
    built: list[Any] = []
    worker = threading.Thread(target=lambda: built.append(tree.update(keys, values)))
    counted = 0
    worker.start()
    while worker.is_alive():
        counted += 1
    worker.join()
    assert len(built[0].items()) == len(keys)
    assert counted > 1_000, f"counted {counted} times while the update ran"


def test_from_entries_refuses_a_value_that_is_not_bytes() -> None:
    with pytest.raises(TypeError):
        smt.Tree.from_entries([(bytes(32), None)])  # type: ignore[list-item]


def test_from_entries_refuses_a_duplicate_key() -> None:
    with pytest.raises(ValueError, match=r"unique|duplicate"):
        smt.Tree.from_entries([(bytes(32), bytes(32)), (bytes(32), b"\x01" * 32)])


def test_the_chain_uses_the_c_tree_unless_told_not_to() -> None:
    """SMARTCITY_SMT=python (a before/after, or to rule the C out) selects the Python tree;
    the SM3 suite's tree is always Python (its hash is not SHA-256)."""
    probe = "import chain.smt as s; print(s._native_tree is not None)"
    for setting, expected in (("", "True"), ("python", "False")):
        env = {**os.environ, "SMARTCITY_SMT": setting}
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


def test_trees_sharing_nodes_are_built_and_dropped_on_many_threads_at_once() -> None:
    """Nodes are shared between trees and counted atomically: threads building on one base
    and dropping what they built, all at once, leave every tree as a lone thread makes it."""
    digest = lambda i: hashlib.sha256(i.to_bytes(4)).digest()  # noqa: E731
    keys = sorted(digest(i) for i in range(5_000))
    base = _smt.Tree().update(keys, [digest(i) for i in range(5_000)])

    def change(worker: int, round_: int) -> tuple[list[bytes], list[bytes | None]]:
        picked = sorted(
            {keys[(worker * 7919 + round_ * 104_729 + j * 31) % 5_000] for j in range(64)}
        )
        return picked, [None if j % 3 == 0 else digest(worker + j) for j in range(len(picked))]

    roots: dict[tuple[int, int], bytes] = {}

    def work(worker: int) -> None:
        for round_ in range(40):
            tree = base.update(*change(worker, round_))
            roots[worker, round_] = tree.root_hash
            del tree  # dropped while the other threads build on the same base

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (worker, round_), root in roots.items():
        assert root == base.update(*change(worker, round_)).root_hash
    assert len(base.items()) == 5_000
