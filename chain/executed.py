"""A block executed on top of the committed state: what the ledger certifies, commits and
stores, and what the validators of one process share (chain.consensus.candidate)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain.block import Header, Receipt
from chain.contracts import membership
from chain.smt import Tree
from chain.state import Overlay, StateKey, StateView, Stored
from chain.store import TxRow
from chain.tx import Tx


@dataclass
class BlockResult:
    """A block executed on top of the committed state, ready to be certified and committed."""

    header: Header
    txs: list[Tx]
    receipts: list[Receipt]
    changes: dict[StateKey, Any]
    tree: Tree
    # Each written key as the store keeps it (chain.state.Stored)
    stored: Stored
    # The written keys the state did not hold before the block (the store appends them)
    created: frozenset[StateKey] = frozenset()

    @cached_property
    def tx_rows(self) -> list[TxRow]:
        """The block's transaction rows as the store keeps them (the canonical encodings made
        for the Merkle roots): made once, for every ledger of the process that stores it."""
        return [
            TxRow(tx.hash, i, tx.expiry_height, tx.encode().decode(), r.encode().decode())
            for i, (tx, r) in enumerate(zip(self.txs, self.receipts, strict=True))
        ]


class Senders:
    """Senders' organisations and roles as resolved within one block: a block's transactions
    mostly come from a few keys, and their membership records change only if a transaction
    of the block writes the membership namespace (then every sender is resolved afresh)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, frozenset[str]] | None] = {}

    def resolve(self, overlay: Overlay, pub_key: str) -> tuple[str, frozenset[str]] | None:
        """membership.resolve_key on the block's state as `overlay` holds it."""
        known = self._known
        if pub_key in known:
            return known[pub_key]
        found = membership.resolve_key(StateView(overlay, membership.NAMESPACE), pub_key)
        known[pub_key] = found
        return found

    def written(self, overlay: Overlay) -> None:
        """Forget every sender when a transaction's merged writes touch membership."""
        if self._known and any(ns == membership.NAMESPACE for ns, _ in overlay.writes):
            self._known.clear()


class LiveTxs(dict[str, int]):
    """Committed transactions that could still be replayed (their expiry height not yet
    passed): hash -> expiry height, each forgotten in the block after its expiry. A dict, so
    the look-ups every admission, reap and gossip makes stay the dict's own (a Python
    __contains__ cost each of them a method call).

    Kept by expiry height too, so each block forgets only what just expired: rebuilding the
    whole map every 1,000 heights held the ledger's lock and the GIL 142 ms at 1,000,000
    entries and 727 ms at 4,000,000 (a node at 10,000 tx/s with a 1,000-block TTL holds 2-4
    million), stopping every thread of the process each time."""

    def __init__(self, expiries: dict[str, int], *, next_height: int) -> None:
        super().__init__(expiries)
        self._by_expiry: dict[int, list[str]] = {}
        for tx_hash, expiry in expiries.items():
            self._by_expiry.setdefault(expiry, []).append(tx_hash)
        self._floor = next_height  # every expiry below it is forgotten

    def add(self, tx_hash: str, expiry: int) -> None:
        self[tx_hash] = expiry
        self._by_expiry.setdefault(expiry, []).append(tx_hash)

    def forget_expired(self, height: int) -> None:
        """Forget every transaction whose expiry height is below `height` (a block at `height`
        has committed: none of them can be included again)."""
        while self._floor < height:
            for tx_hash in self._by_expiry.pop(self._floor, ()):
                if self.get(tx_hash) == self._floor:
                    del self[tx_hash]
            self._floor += 1
