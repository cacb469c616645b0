"""Read-only questions about the chain that the node API has no index for.

The explorer wants recent anchor batches, "what is this hash?" and an SME's rating history. The
node answers by key (a block by height, a transaction by hash, a state key); these functions
walk the node's own block store to answer the rest. They only read committed data, which any
registered organisation may read through /chain anyway, and every answer names the transaction
whose proof bundle backs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from chain.contracts.anchors import NAMESPACE as ANCHORS
from chain.contracts.anchors import root_key
from chain.errors import StorageError
from chain.ledger import Ledger
from chain.store import blocks, txs

MAX_CANDIDATES = 2000  # transactions mentioning "anchors" looked at for the recent batches
IDENTITY = "identity"


@dataclass(frozen=True)
class Found:
    """What a 64-hex string names on this chain."""

    kind: str  # tx | block | anchor | credential
    detail: dict[str, Any]


def recent_anchors(ledger: Ledger, *, limit: int, org: str | None) -> list[dict[str, Any]]:
    """The newest anchor batches (anchors.anchor), newest first."""
    query = (
        select(txs.c.hash, txs.c.body, txs.c.receipt)
        .where(txs.c.body.contains(f'"{ANCHORS}"'))
        .order_by(txs.c.height.desc(), txs.c.idx.desc())
        .limit(MAX_CANDIDATES)
    )
    found: list[dict[str, Any]] = []
    for row in _rows(ledger, query, "recent anchors"):
        tx, receipt = json.loads(row.body), json.loads(row.receipt)
        if tx.get("contract") != ANCHORS or receipt.get("status") != "ok":
            continue
        batch = ledger.read(ANCHORS, f"batch:{row.hash}")
        if batch is not None and (org is None or batch["org"] == org):
            found.append(anchor_view(row.hash, batch))
            if len(found) == limit:
                break
    return found


def anchor_view(tx_hash: str, batch: dict[str, Any]) -> dict[str, Any]:
    return {
        "tx": tx_hash,
        "height": batch["height"],
        "org": batch["org"],
        "root": batch["root"],
        "count": batch["count"],
        "label": batch["label"],
        "metadata": batch.get("metadata", {}),
    }


def lookup(ledger: Ledger, digest: str, orgs: list[str]) -> Found | None:
    """A transaction, a block, an anchored root (of any of `orgs`) or an anchored credential."""
    committed = ledger.store.tx(digest)
    if committed is not None:
        return Found("tx", {"tx": digest, "height": committed[0]})
    height = _block_height(ledger, digest)
    if height is not None:
        return Found("block", {"height": height})
    for org in orgs:
        tx_hash = ledger.read(ANCHORS, root_key(org, digest))
        if isinstance(tx_hash, str):
            batch = ledger.read(ANCHORS, f"batch:{tx_hash}")
            return Found("anchor", anchor_view(tx_hash, batch))
    credential = ledger.read(IDENTITY, f"cred:{digest}")
    if credential is not None:
        return Found("credential", {"hash": digest, **credential})
    return None


def _block_height(ledger: Ledger, block_hash: str) -> int | None:
    rows = _rows(ledger, select(blocks.c.height).where(blocks.c.hash == block_hash), "a block")
    return int(rows[0].height) if rows else None


def _rows(ledger: Ledger, query: Any, what: str) -> list[Any]:
    """Run a read on the node's block store; its database errors become StorageError."""
    try:
        with ledger.store.engine.connect() as conn:
            return list(conn.execute(query).all())
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read {what} from the block store: {exc}") from exc
