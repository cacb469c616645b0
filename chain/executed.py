"""A block executed on top of the committed state: what the ledger certifies, commits and
stores, and what the validators of one process share (chain.consensus.candidate)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain.block import Header, Receipt
from chain.smt import Tree
from chain.state import StateKey
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
    # Each written key's canonical value text and value hash (None where the key is deleted)
    stored: dict[StateKey, tuple[str, str] | None]

    @cached_property
    def tx_rows(self) -> list[TxRow]:
        """The block's transaction rows as the store keeps them (the canonical encodings made
        for the Merkle roots): made once, for every ledger of the process that stores it."""
        return [
            TxRow(tx.hash, i, tx.expiry_height, tx.encode().decode(), r.encode().decode())
            for i, (tx, r) in enumerate(zip(self.txs, self.receipts, strict=True))
        ]
