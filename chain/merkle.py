"""RFC 6962 / RFC 9162 Merkle trees: roots, audit paths and their verification.

H is SHA-256 unless a caller passes another hashlib-style constructor (`hasher`): the chain's
own trees (transactions, receipts) use its crypto suite's (chain.suites), SM3 on an sm2-sm3
chain; the applications' record batches stay SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence

from chain.errors import ProofError
from chain.suites.base import Hasher

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
_SHA256: Hasher = hashlib.sha256
# The C root under SHA-256 (smartcity_native._hashes, the GIL released while it hashes): a block's
# transactions' and receipts' roots cost its producer 1.9 us a transaction in Python
_native_root: Callable[[Sequence[bytes]], bytes | None] | None = None
with contextlib.suppress(ImportError):
    from smartcity_native._hashes import merkle_root as _native_root


def leaf_hash(data: bytes, hasher: Hasher = _SHA256) -> bytes:
    """H(0x00 || leaf)."""
    return hasher(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes, hasher: Hasher = _SHA256) -> bytes:
    """H(0x01 || left || right)."""
    return hasher(NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes], hasher: Hasher = _SHA256) -> bytes:
    """Merkle tree hash of leaves already hashed with `leaf_hash` (RFC 6962 section 2.1)."""
    if not hashes:
        return hasher(b"").digest()
    level = list(hashes)
    # Pairing left to right and promoting an odd last node gives the same tree as RFC 6962's
    # split at the largest power of two below n.
    while len(level) > 1:
        nxt = [
            hasher(NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(leaves: Sequence[bytes], hasher: Hasher = _SHA256) -> bytes:
    """Merkle tree hash of raw leaves."""
    if hasher is _SHA256 and _native_root is not None:
        found = _native_root(leaves)  # None for leaves not in a list or tuple of bytes
        if found is not None:
            return found
    return root_from_leaf_hashes([hasher(LEAF_PREFIX + leaf).digest() for leaf in leaves], hasher)


def audit_path(hashes: Sequence[bytes], index: int, hasher: Hasher = _SHA256) -> list[bytes]:
    """Audit path for leaf `index` among leaf hashes (RFC 6962 section 2.1.1)."""
    if not 0 <= index < len(hashes):
        raise IndexError(f"leaf {index} is outside a tree of {len(hashes)}")
    path: list[bytes] = []
    level = list(hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [node_hash(level[i], level[i + 1], hasher) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        index //= 2
    return path


def root_from_path(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], hasher: Hasher = _SHA256
) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162 section 2.1.3.2)."""
    # Verify the index lies inside the tree
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    node = leaf
    for sibling in path:
        # Verify the path is not longer than the tree is deep
        if sn == 0:
            raise ProofError("audit path is longer than the tree")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node, hasher)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling, hasher)
        fn >>= 1
        sn >>= 1
    # Verify the path reached the root
    if sn != 0:
        raise ProofError("audit path is shorter than the tree")
    return node
