"""Proof bundles of committed transactions (docs/protocol.md, "Proof bundles"): the transaction
and its receipt with their Merkle paths in the block, and the frame every proof cites."""

from __future__ import annotations

from typing import Any, Protocol

from chain import merkle
from chain.block import Receipt
from chain.store import BlockStore
from chain.suites.base import Hasher
from chain.suites.hashing import ChainTrees
from chain.tx import tx_from_json


class Provable(Protocol):
    """What a bundle is built from (the ledger)."""

    store: BlockStore
    trees: ChainTrees

    @property
    def chain_id(self) -> str: ...

    def proof_frame(self, height: int) -> dict[str, Any]: ...


def tx_bundle(ledger: Provable, tx_hash: str) -> dict[str, Any] | None:
    """The proof bundle of a committed transaction and its receipt, None if not committed."""
    found = ledger.store.tx(tx_hash)
    if found is None:
        return None
    height = found[0]
    rows = ledger.store.block_txs(height)
    bodies = [tx_from_json(body) for body, _ in rows]
    index = next(i for i, t in enumerate(bodies) if t.hash == tx_hash)
    hasher = ledger.trees.hasher
    tx_leaves = [merkle.leaf_hash(t.encode(), hasher) for t in bodies]
    receipts = [Receipt.from_json(r) for _, r in rows]
    receipt_leaves = [merkle.leaf_hash(r.encode(), hasher) for r in receipts]
    return {
        "version": 1,
        "kind": "tx",
        "chain_id": ledger.chain_id,
        "tx": bodies[index].to_json(),
        "tx_proof": _path_json(tx_leaves, index, hasher),
        "receipt": receipts[index].to_json(),
        "receipt_proof": _path_json(receipt_leaves, index, hasher),
        **ledger.proof_frame(height),
    }


def _path_json(leaves: list[bytes], index: int, hasher: Hasher) -> dict[str, Any]:
    path = merkle.audit_path(leaves, index, hasher)
    return {"index": index, "size": len(leaves), "path": [p.hex() for p in path]}
