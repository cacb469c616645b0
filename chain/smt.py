"""A compact sparse Merkle tree over 256-bit key hashes, proving presence and absence.

Keys sit on the path given by the bits of their hash; a subtree holding a single leaf is replaced
by that leaf, so the depth is about log2(n). Nodes are immutable: an update returns a new root
and shares every untouched subtree, which lets a proposer execute a block speculatively.

    empty    = 32 zero bytes
    leaf     = H(0x00 || key_hash || value_hash)
    internal = H(0x01 || left || right)

H is the module's `_sha256` and nothing else, looked up at each call: chain.suites.hashing
loads a second instance of this module whose `_sha256` is SM3, for chains of the sm2-sm3 suite
(the default chain's code path is untouched by it).

Under SHA-256 the tree lives in C when smartcity_native's extension is installed (built from
native/ at install; `make install` compiles it where a C compiler and OpenSSL's headers are):
the same tree, root and proofs, its nodes in C memory and each update built with the GIL
released, so a block's thousands of keys no longer hold up the node's other threads. This
module stays the reference, the fallback and the SM3 tree's code; SMARTCITY_SMT=python makes a
process use it for SHA-256 too (a before/after, or a check of the two against each other).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chain.errors import ProofError

_sha256 = hashlib.sha256
HASH_BYTES = 32
EMPTY_HASH = bytes(HASH_BYTES)
KEY_BITS = 256
_EMPTY_LEFT = b"\x01" + EMPTY_HASH

# Which tree updates under SHA-256: "c" when smartcity_native's extension is installed, else
# "python" (built without a compiler or OpenSSL's headers: same roots, slower).
# SMARTCITY_SMT=python forces the Python tree; =c makes process commands refuse to start
# without the C one (smartcity.settings checks it, as it checks every SMARTCITY_ variable).
_native_tree: Any = None
with contextlib.suppress(ImportError):
    from smartcity_native._smt import Tree as _native_tree
_c_tree = _native_tree
C_INSTALLED = _c_tree is not None
if os.environ.get("SMARTCITY_SMT", "") == "python":
    _native_tree = None
IMPLEMENTATION = "c" if _native_tree is not None else "python"


def use_implementation(name: str) -> None:
    """Choose the tree for this process (`smt` in a settings file, applied at start): "python",
    or "c" where it is installed (ValueError if not). Trees are the same either way."""
    global _native_tree, IMPLEMENTATION
    if name == "c" and not C_INSTALLED:
        raise ValueError("the C tree is not installed")
    if name not in ("c", "python"):
        raise ValueError(f"no tree implementation {name!r}: c or python")
    _native_tree = _c_tree if name == "c" else None
    IMPLEMENTATION = name


def bit(key_hash: bytes, depth: int) -> int:
    """The branch (0 left, 1 right) a key takes at a depth."""
    return (key_hash[depth >> 3] >> (7 - (depth & 7))) & 1


class Leaf:
    """A key's value hash at the end of its path, as a proof carries it."""

    __slots__ = ("hash", "key_hash", "value_hash")
    key_hash: bytes
    value_hash: bytes
    hash: bytes

    def __init__(self, key_hash: bytes, value_hash: bytes) -> None:
        self.key_hash = key_hash
        self.value_hash = value_hash
        self.hash = _sha256(b"\x00" + key_hash + value_hash).digest()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Leaf)
            and other.key_hash == self.key_hash
            and other.value_hash == self.value_hash
        )

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        return f"Leaf({self.key_hash.hex()[:16]}…, {self.value_hash.hex()[:16]}…)"


# Inside a tree a node is a plain tuple whose first item is its hash, made once when the node is:
#   leaf     (hash, key_hash, value_hash)      internal (hash, left, right)
# Tuples holding only bytes, None and such tuples are untracked by the garbage collector at its
# first pass over them, so a tree of any size costs the collector nothing afterwards (slotted
# objects were re-scanned by every full collection, more often as the chain grew). The C tree's
# nodes are not Python objects at all.
Made = tuple[bytes, Any, Any]
Node = Made | None


def _leaf(key_hash: bytes, value_hash: bytes) -> Made:
    return (_sha256(b"\x00" + key_hash + value_hash).digest(), key_hash, value_hash)


def _internal(left: Node, right: Node) -> Node:
    return (
        _sha256(
            b"\x01"
            + (EMPTY_HASH if left is None else left[0])
            + (EMPTY_HASH if right is None else right[0])
        ).digest(),
        left,
        right,
    )


def node_hash(node: Node) -> bytes:
    return EMPTY_HASH if node is None else node[0]


def _join(left: Node, right: Node) -> Node:
    """A parent of two subtrees, collapsing a lone leaf upwards."""
    if left is None and (right is None or type(right[1]) is bytes):
        return right
    if right is None and type(left[1]) is bytes:  # type: ignore[index]
        return left
    return _internal(left, right)


def _split(depth: int, items: Sequence[tuple[bytes, bytes | None]]) -> int:
    """Where the sorted items sharing the path above `depth` turn from bit 0 to bit 1 there:
    a binary search for the smallest key on the right (the shared prefix, a 1, then zeros)."""
    first = int.from_bytes(items[0][0])
    shift = KEY_BITS - 1 - depth
    right = (((first >> shift) | 1) << shift).to_bytes(HASH_BYTES)
    return bisect_left(items, right, key=_key)


def _key(item: tuple[bytes, bytes | None]) -> bytes:
    return item[0]


def _build(depth: int, entries: Sequence[tuple[bytes, bytes]]) -> Node:
    """A subtree from entries sorted by key hash, all sharing the path above `depth`."""
    if not entries:
        return None
    if len(entries) == 1:
        return _leaf(*entries[0])
    if depth >= KEY_BITS:
        raise ValueError("duplicate key hash")
    split = _split(depth, entries)
    return _join(_build(depth + 1, entries[:split]), _build(depth + 1, entries[split:]))


def _update(
    node: Node, depth: int, keys: list[bytes], values: list[bytes | None], lo: int, hi: int
) -> Node:
    """Apply the sorted keys[lo:hi] (their value hashes, None to delete) below `node`."""
    if lo == hi:
        return node
    if node is None or type(node[1]) is bytes:
        if hi - lo == 1:
            return _update_end(node, depth, keys[lo], values[lo])
        merged = dict(zip(keys[lo:hi], values[lo:hi], strict=True))
        if node is not None:
            merged.setdefault(node[1], node[2])
        live = sorted((k, v) for k, v in merged.items() if v is not None)
        return _build(depth, live)
    if hi - lo == 1:
        return _update_one(node, depth, keys[lo], values[lo])
    # Where the keys turn from bit 0 to bit 1 at this depth: the smallest possible key on the
    # right is the shared prefix, a 1, then zeros
    shift = KEY_BITS - 1 - depth
    right = (((int.from_bytes(keys[lo]) >> shift) | 1) << shift).to_bytes(HASH_BYTES)
    split = bisect_left(keys, right, lo, hi)
    return _join(
        _update(node[1], depth + 1, keys, values, lo, split),
        _update(node[2], depth + 1, keys, values, split, hi),
    )


def _update_end(node: Node, depth: int, key: bytes, value: bytes | None) -> Node:
    """One key set or deleted where its path ends: at nothing or at a leaf (its own or
    another key's, which then shares a subtree with it)."""
    if node is None:
        return None if value is None else _leaf(key, value)
    other = node[1]
    if other == key:
        return None if value is None else _leaf(key, value)
    if value is None:
        return node
    # Two leaves below the first bit where their keys differ, and above that a node with an
    # empty side for each bit they share below `depth` (as _build makes it)
    differ = KEY_BITS - (int.from_bytes(key) ^ int.from_bytes(other)).bit_length()
    leaf = _leaf(key, value)
    sub: Made
    if (key[differ >> 3] >> (7 - (differ & 7))) & 1:
        sub = (_sha256(b"\x01" + node[0] + leaf[0]).digest(), node, leaf)
    else:
        sub = (_sha256(b"\x01" + leaf[0] + node[0]).digest(), leaf, node)
    for d in range(differ - 1, depth - 1, -1):
        if (key[d >> 3] >> (7 - (d & 7))) & 1:
            sub = (_sha256(_EMPTY_LEFT + sub[0]).digest(), None, sub)
        else:
            sub = (_sha256(b"\x01" + sub[0] + EMPTY_HASH).digest(), sub, None)
    return sub


def _update_one(node: Node, depth: int, key: bytes, value: bytes | None) -> Node:
    """_update for a single key, as a loop: most of a block's keys are alone in their subtree
    below the top levels. Walk down the key's path to where it ends, update there, and
    rebuild the path upwards (joining as _update does, so a deletion collapses the same way)."""
    path: list[tuple[Any, int]] = []
    below: Node = node
    while below is not None and type(below[1]) is not bytes:
        right = (key[depth >> 3] >> (7 - (depth & 7))) & 1
        path.append((below, right))
        below = below[2] if right else below[1]
        depth += 1
    sub = _update_end(below, depth, key, value)
    # _join and _internal inlined: on the way up the other side is the parent's, and a lone
    # leaf (or nothing) with an empty sibling rises unchanged
    for parent, right in reversed(path):
        if right:
            other = parent[1]
            if other is None:
                if sub is None or type(sub[1]) is bytes:
                    continue
                sub = (_sha256(_EMPTY_LEFT + sub[0]).digest(), None, sub)
            elif sub is None and type(other[1]) is bytes:
                sub = other
            else:
                sub = (_sha256(b"\x01" + other[0] + node_hash(sub)).digest(), other, sub)
        else:
            other = parent[2]
            if other is None:
                if sub is None or type(sub[1]) is bytes:
                    continue
                sub = (_sha256(b"\x01" + sub[0] + EMPTY_HASH).digest(), sub, None)
            elif sub is None and type(other[1]) is bytes:
                sub = other
            else:
                sub = (_sha256(b"\x01" + node_hash(sub) + other[0]).digest(), sub, other)
    return sub


def _c_tree_of(native: Any, ordered: list[tuple[bytes, bytes]]) -> Any:
    """A C tree of (key hash, value hash) entries in key order (the C refuses a key twice:
    "sorted and unique")."""
    return native().update([k for k, _ in ordered], [v for _, v in ordered])


def _native() -> Any:
    """The C tree's type if this module's tree uses it (installed, chosen, and hashing SHA-256:
    the SM3 instance of this module never does), else None. Read once per batch, so a batch
    uses one implementation whatever switches during it."""
    return _native_tree if _sha256 is hashlib.sha256 else None


@dataclass(frozen=True, eq=False)
class Tree:
    """An immutable tree; `update` returns a new one. Its nodes are the Python tuples above
    (`root`), or, where the C tree is used, in C memory (`native`, a smartcity_native Tree);
    either way it has the same root hash and proofs. A tree made by one implementation and
    updated while the other is chosen (a process switching with `use_implementation`) is
    carried over, leaf by leaf, once."""

    root: Node = None
    native: Any = None

    @property
    def root_hash(self) -> bytes:
        if self.native is not None:
            return self.native.root_hash  # type: ignore[no-any-return]
        return node_hash(self.root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tree) and other.root_hash == self.root_hash

    def __hash__(self) -> int:
        return hash(self.root_hash)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[bytes, bytes]]) -> Tree:
        ordered = sorted(entries)
        native = _native()
        if native is not None:
            if any(type(v) is not bytes for _, v in ordered):  # the C would read None as delete
                raise TypeError("a value hash must be bytes")
            return cls(native=_c_tree_of(native, ordered))
        return cls(_build(0, ordered))

    def update(self, changes: Iterable[tuple[bytes, bytes | None]]) -> Tree:
        """Set (value hash) or delete (None) many keys at once."""
        latest = dict(changes)
        keys = sorted(latest)
        values = [latest[k] for k in keys]
        native = _native()
        if native is not None:
            return Tree(native=self._in_c(native).update(keys, values))
        return Tree(_update(self._in_python(), 0, keys, values, 0, len(keys)))

    def leaves(self) -> list[tuple[bytes, bytes]]:
        """Every (key hash, value hash), in key order."""
        if self.native is not None:
            return list(self.native.items())
        out: list[tuple[bytes, bytes]] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node is None:
                continue
            if type(node[1]) is bytes:
                out.append((node[1], node[2]))
            else:
                stack.extend((node[2], node[1]))  # left first out: key order
        return out

    def _in_c(self, native: Any) -> Any:
        return self.native if self.native is not None else _c_tree_of(native, self.leaves())

    def _in_python(self) -> Node:
        return self.root if self.native is None else _build(0, self.leaves())

    def prove(self, key_hash: bytes) -> StateProof:
        """Siblings from the root down to where the key's path ends, and what it ends at."""
        if self.native is not None:
            siblings, leaf = self.native.prove(key_hash)
            return StateProof(siblings=siblings, leaf=None if leaf is None else Leaf(*leaf))
        siblings = []
        node = self.root
        depth = 0
        while node is not None and type(node[1]) is not bytes:
            if bit(key_hash, depth):
                siblings.append(node_hash(node[1]))
                node = node[2]
            else:
                siblings.append(node_hash(node[2]))
                node = node[1]
            depth += 1
        return StateProof(siblings=siblings, leaf=None if node is None else Leaf(node[1], node[2]))


@dataclass(frozen=True)
class StateProof:
    """Inclusion or exclusion of one key against a root."""

    siblings: list[bytes]
    leaf: Leaf | None

    def to_json(self) -> dict[str, object]:
        leaf = None
        if self.leaf is not None:
            leaf = {"key_hash": self.leaf.key_hash.hex(), "value_hash": self.leaf.value_hash.hex()}
        return {"siblings": [s.hex() for s in self.siblings], "leaf": leaf}


def compute_root(key_hash: bytes, proof: StateProof) -> bytes:
    """The root a proof implies for a key's path (checks the terminal leaf lies on that path)."""
    depth = len(proof.siblings)
    # Verify the terminal leaf, if another key's, shares the proven key's path
    if proof.leaf is not None and proof.leaf.key_hash != key_hash:
        for d in range(depth):
            if bit(proof.leaf.key_hash, d) != bit(key_hash, d):
                raise ProofError("the terminal leaf does not lie on the key's path")
    node = EMPTY_HASH if proof.leaf is None else proof.leaf.hash
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        if bit(key_hash, d):
            node = _sha256(b"\x01" + sibling + node).digest()
        else:
            node = _sha256(b"\x01" + node + sibling).digest()
    return node
