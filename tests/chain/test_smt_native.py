"""The sparse Merkle tree in C (smartcity_native) builds the Python reference's tree, node for node.

chain.smt runs its update in C under SHA-256 when the extension is installed. Roots are what a
chain's state root, proofs and every node's agreement rest on, so the two must never differ:
Hypothesis drives both through the same sequences of sets and deletes, with keys drawn to share
long prefixes (deep splits, leaves pushed down a path, collapses on delete), and the trees are
compared whole (nested tuples: every node's hash and shape), not just their roots.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import smt


def _c_toolchain() -> bool:
    """A C compiler that finds OpenSSL's headers: what `make install` needs to build the tree."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return False
    probe = subprocess.run(
        [compiler, "-fsyntax-only", "-x", "c", "-"],
        input="#include <openssl/sha.h>\n",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


try:
    from smartcity_native import _smt
except ImportError:
    if _c_toolchain():  # it could have been built: a broken build must not pass as a skip
        raise
    pytest.skip(
        "no C tree to test: this machine has no C compiler with OpenSSL's headers, so the"
        " install built none and every process runs the Python tree, which the rest of the"
        " suite tests (install gcc and libssl-dev, then `make install`, to build and test it)",
        allow_module_level=True,
    )


def _python_update(root: smt.Node, changes: dict[bytes, bytes | None]) -> smt.Node:
    keys = sorted(changes)
    return smt._update(root, 0, keys, [changes[k] for k in keys], 0, len(keys))


def _native_update(root: smt.Node, changes: dict[bytes, bytes | None]) -> smt.Node:
    keys = sorted(changes)
    return _smt.update(root, keys, [changes[k] for k in keys])


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
    native: smt.Node = None
    for changes in blocks:
        python = _python_update(python, changes)
        native = _native_update(native, changes)
        assert native == python
        # Each reads the other's nodes: a tree grown by one is updated by the other
        assert _native_update(python, changes) == _python_update(native, changes)


@settings(max_examples=150, deadline=None)
@given(st.lists(_block, min_size=1, max_size=4), st.integers(min_value=1, max_value=7))
def test_a_batch_in_chunks_builds_the_batch_tree(
    blocks: list[dict[bytes, bytes | None]], chunk: int
) -> None:
    """Tree.update hands the C a few hundred keys at a time (so other threads get the GIL in
    between); any chunking gives the tree the whole batch gives."""
    python: smt.Node = None
    native: smt.Node = None
    for changes in blocks:
        keys = sorted(changes)
        native = smt._update_in_chunks(_smt.update, native, keys, [changes[k] for k in keys], chunk)
        python = _python_update(python, changes)
        assert native == python


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_key, st.binary(min_size=32, max_size=32), max_size=60))
def test_from_entries_matches_the_python_build(entries: dict[bytes, bytes]) -> None:
    ordered = sorted(entries.items())
    assert smt.Tree.from_entries(entries.items()).root == smt._build(0, ordered)


def test_a_grown_tree_proves_every_key_against_the_c_root() -> None:
    """Proofs are walked in Python over the nodes the C made."""
    digest = lambda i: hashlib.sha256(i.to_bytes(4)).digest()  # noqa: E731
    tree = smt.Tree()
    for start in range(0, 3_000, 500):
        tree = tree.update((digest(i), digest(i + 1)) for i in range(start, start + 500))
    tree = tree.update((digest(i), None) for i in range(0, 3_000, 7))  # deletes
    for i in range(0, 3_000, 13):
        proof = tree.prove(digest(i))
        assert smt.compute_root(digest(i), proof) == tree.root_hash
        present = proof.leaf is not None and proof.leaf.key_hash == digest(i)
        assert present == (i % 7 != 0)  # an absent key's path ends empty or at another's leaf


@pytest.mark.parametrize(
    ("root", "keys", "values", "error", "message"),
    [
        ("not a node", [], [], ValueError, "not a tree made by chain.smt"),
        (None, [b"short"], [None], TypeError, "key 0 is not a 32-byte hash"),
        (None, ["text" * 8], [None], TypeError, "key 0 is not a 32-byte hash"),
        (None, [bytes(32)], ["text"], TypeError, "value 0 is neither bytes nor None"),
        (None, [bytes(32), bytes(32)], [None, None], ValueError, "sorted and unique"),
        (None, [b"\x01" * 32, bytes(32)], [None, None], ValueError, "sorted and unique"),
        (None, [bytes(32)], [], ValueError, "keys and values differ in length"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(
    root: object, keys: list, values: list, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _smt.update(root, keys, values)


_H = b"h" * 32
_DEEP: Any = (_H, b"\x01" * 32, b"v")
for _ in range(300):
    _DEEP = (_H, _DEEP, None)


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        ((_H, b"short", b"v"), "a leaf's key is not 32 bytes"),
        ((_H, b"\x01" * 32, None), "a leaf's key is not 32 bytes or its value not bytes"),
        (_DEEP, "a path is deeper than 256 bits"),
        ((_H, 1, None), "a child is neither None nor a node"),
        ((_H, (b"h", b"\x80" + bytes(31), b"v"), None), "a node's hash is not 32 bytes"),
        ((_H, (), None), "a node is not a tuple of three"),
        ((b"h", None, None), "a node's hash is not 32 bytes"),
    ],
)
def test_a_malformed_tree_is_refused_not_read_past(root: Any, problem: str) -> None:
    """Trees come only from chain.smt, but the C walks pointers: a node of the wrong shape
    anywhere on a key's path is an error (found by review under AddressSanitizer: these read
    outside their objects before)."""
    for keys in ([bytes(32)], [bytes(32), b"\x80" + bytes(31)]):
        with pytest.raises(ValueError, match=re.escape(problem)):
            _smt.update(root, keys, [b"x" * 32] * len(keys))


def test_a_collection_emptying_the_callers_lists_mid_update_changes_nothing() -> None:
    """A garbage collection while nodes are allocated may run a finalizer that empties the
    lists the update was given (review, AddressSanitizer: use after free); the update reads its
    own copy and builds the tree of what it was called with. Where the collection lands depends
    on the allocations since the last one (other threads in the worker allocate too: the CI run
    at 5fdd6ef landed it inside the copy once), so the call is tried with a few paddings and
    each outcome must be a safe one: the tree of what was given, a refusal because the lists
    changed while they were copied, or an empty update if they were emptied before being read."""
    import gc

    given_keys = sorted(os.urandom(32) for _ in range(400))
    given_values = [os.urandom(32) for _ in range(400)]
    expected = smt._build(0, list(zip(given_keys, given_values, strict=True)))
    outcomes = set()
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    gc.enable()
    try:
        for pad in range(0, 100, 9):
            keys, values = list(given_keys), list(given_values)
            ran: list[bool] = []

            class Saboteur:
                def __del__(
                    self,
                    keys: list[bytes] = keys,
                    values: list[bytes] = values,
                    ran: list[bool] = ran,
                ) -> None:
                    ran.append(True)
                    keys.clear()
                    values.clear()
                    _ = [os.urandom(32) for _ in range(2_000)]  # reuse what was freed

            gc.collect(0)  # the young generation: a full one walks the worker's whole heap
            padding: list[list[int]] = [[] for _ in range(pad)]
            gc.set_threshold(100)
            saboteur = Saboteur()
            saboteur.me = saboteur  # type: ignore[attr-defined]  # only a collection frees it
            del saboteur
            try:
                root = _smt.update(None, keys, values)
            except RuntimeError as refused:
                outcomes.add(str(refused))
            else:
                if not ran:
                    outcomes.add("no collection in the call")
                else:
                    outcomes.add(
                        "built" if root == expected else "empty" if root is None else "wrong tree"
                    )
            finally:
                gc.set_threshold(*threshold)
            gc.collect(0)  # the young generation: a full one walks the worker's whole heap
            del padding
    finally:
        gc.set_threshold(*threshold)
        if not enabled:
            gc.disable()
    assert outcomes <= {
        "built",
        "empty",
        "no collection in the call",
        "keys or values changed during the call",
    }
    assert "built" in outcomes  # a collection emptied the lists among the nodes at least once


def _nodes(node: Any) -> list[tuple[Any, ...]]:
    if node is None:
        return []
    if isinstance(node[1], bytes):
        return [node]
    return [node, *_nodes(node[1]), *_nodes(node[2])]


def test_the_nodes_an_update_makes_are_out_of_the_collectors_sight() -> None:
    """A node of bytes, None and such nodes cannot be in a reference cycle: the C untracks it as
    it is made (CPython's own rule for tuples, applied at once), so a block's new nodes cost the
    collector nothing; before, the collections they triggered were a third of the update."""
    import gc

    keys = sorted(os.urandom(32) for _ in range(300))
    root = _smt.update(None, keys, [os.urandom(32) for _ in keys])
    assert root is not None
    nodes = _nodes(root)
    assert sum(isinstance(node[1], bytes) for node in nodes) == len(keys)  # every leaf
    assert not any(gc.is_tracked(node) for node in nodes)


def test_a_node_over_a_tracked_child_stays_tracked() -> None:
    """A tree handed in may hold a tuple the collector still tracks (one made in Python, not yet
    examined); a node over it stays tracked, so a cycle through that child is still found."""
    import gc

    left, right = b"\x00" + bytes(31), b"\x80" + bytes(31)
    enabled = gc.isenabled()
    gc.disable()  # a collection in between would untrack the fresh tuple itself
    try:
        tracked = smt._leaf(right, b"r" * 32)  # a fresh tuple: tracked until a collection sees it
        assert gc.is_tracked(tracked)
        root = smt._internal(None, tracked)
        new = _smt.update(root, [left], [b"l" * 32])
    finally:
        if enabled:
            gc.enable()
    assert new[2] is tracked
    assert gc.is_tracked(new)
    assert not gc.is_tracked(new[1])  # the new leaf has only bytes


@pytest.mark.parametrize("shrink", ["keys", "values"])
def test_a_collection_shrinking_a_list_while_it_is_copied_is_refused(shrink: str) -> None:
    """The update copies the lists it was given into tuples of its own; allocating those can
    run a collection whose callback shrinks a list (review, ASan: a read past the copy's end,
    and a crash inside CPython's list copy). The lengths are checked again once allocated.
    The list is shrunk at each of the first collections in turn: before the call (refused,
    lengths differ), while the copies are allocated (refused, changed during the call), or
    after the copy (the tree of what was given)."""
    import gc

    given = {"keys": [bytes([i]) * 32 for i in range(1, 41)], "values": [b"v" * 32] * 40}
    expected = smt._build(0, list(zip(given["keys"], given["values"], strict=True)))
    outcomes = set()
    enabled = gc.isenabled()
    gc.enable()  # whatever an earlier test in this worker left
    # Which collection lands inside the copy depends on how many objects were allocated since
    # the last one: every pairing of a few extra allocations and a collection number is tried
    for pad, at in ((pad, at) for pad in range(4) for at in range(1, 7)):
        lists = {name: list(items) for name, items in given.items()}
        seen = [0]

        def callback(
            phase: str,
            _info: dict[str, int],
            at: int = at,
            seen: list[int] = seen,
            lists: dict[str, list[bytes]] = lists,
        ) -> None:
            if phase == "start":
                seen[0] += 1
                if seen[0] == at:
                    del lists[shrink][1:]

        old = gc.get_threshold()
        gc.collect(0)  # the young generation: a full one walks the worker's whole heap
        gc.callbacks.append(callback)
        gc.set_threshold(1)
        try:
            padding: list[list[int]] = [[] for _ in range(pad)]
            root = _smt.update(None, lists["keys"], lists["values"])
            outcome = "built" if root == expected else "wrong tree"
        except (RuntimeError, ValueError) as refused:
            outcome = str(refused)
        finally:
            gc.set_threshold(*old)
            gc.callbacks.remove(callback)
        outcomes.add(outcome)
        del padding
    if not enabled:
        gc.disable()
    assert outcomes <= {
        "keys and values differ in length",
        "keys or values changed during the call",
        "built",
    }
    assert "keys or values changed during the call" in outcomes


def test_from_entries_refuses_a_value_that_is_not_bytes() -> None:
    with pytest.raises(TypeError):
        smt.Tree.from_entries([(bytes(32), None)])  # type: ignore[list-item]


def test_from_entries_refuses_a_duplicate_key() -> None:
    with pytest.raises(ValueError, match=r"unique|duplicate"):
        smt.Tree.from_entries([(bytes(32), bytes(32)), (bytes(32), b"\x01" * 32)])


def test_the_chain_uses_the_c_tree_unless_told_not_to() -> None:
    """SMARTCITY_SMT=python (a before/after, or to rule the C out) selects the Python tree;
    the SM3 suite's tree is always Python (its hash is not SHA-256)."""
    probe = "import chain.smt as s; print(s._native_update is not None)"
    for setting, expected in (("", "True"), ("python", "False")):
        env = {**os.environ, "SMARTCITY_SMT": setting}
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected
