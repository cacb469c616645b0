"""Anchored rating batches: many ratings committed by one Merkle root instead of one entry each.

A batch's ratings are canonical records (`contract_terms.rating_record`); the SHA-256 of each is
a leaf of an RFC 6962 tree whose root the service anchors (`anchors.anchor`) and registers as a
rating batch (`credit.record_rating_batch`): two transactions for any number of SMEs. Each rating's
audit path is what a bank's `record` bundle carries and what `credit.record_inquiry` checks when
a bank first reads a batch-rated SME, which makes the rating the SME's `rating:{uscc}` entry.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from chain import merkle
from services.credit import contract_terms
from services.credit._service_errors import ChainRefused
from services.credit.models import BatchRatingRow, RatingBatchRow, RatingRow
from services.credit.runtime import Runtime

ANCHOR_LABEL = "credit ratings"
# A rating record holds only strings (decimal PD and score, codes, hashes) under fixed ASCII
# keys, for which this encoder writes exactly `chain.encoding.canonical`'s RFC 8785 bytes;
# skipping canonical's per-value type walk saves a tenth of a 10,000-SME batch.
_canonical_strings = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
).encode
_INSERT_CHUNK = 2000


@contextmanager
def gc_paused(large: bool) -> Iterator[None]:
    """Pause the cyclic garbage collector while a large batch allocates its many small objects.

    Rating 10,000 SMEs creates hundreds of thousands of dicts, lists and rows, and each
    allocation threshold crossed starts a collection that walks every live object of the
    process; measured, that was two thirds of the reason codes' time. Nothing in a batch is
    cyclic garbage that must go at once, so the collector resumes (and catches up) after it.
    """
    pause = large and gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause:
            gc.enable()


def anchor_ratings(
    rt: Runtime,
    session: Session,
    model_sha: str,
    entries: list[dict[str, Any]],
    details: dict[str, dict[str, Any]],
) -> RatingBatchRow:
    """Anchor the ratings' root, register the batch on the chain, store its rows; return it."""
    leaves = [
        merkle.leaf_hash(record_hash(contract_terms.rating_record(e, model_sha))) for e in entries
    ]
    root = merkle.root_from_leaf_hashes(leaves).hex()
    anchor_tx = _anchor(rt, root, len(entries), model_sha)
    receipt = rt.ctx.relay(
        contract_terms.NAMESPACE,
        "record_rating_batch",
        {"model": model_sha, "root": root, "count": len(entries)},
    )
    # A retry of the same ratings finds its batch already registered: that is the batch
    if receipt["status"] != "ok" and receipt.get("code") != "batch_exists":
        raise rt.chain.refusal(receipt)
    rt.chain.settle(receipt)
    record = rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.rating_batch_key(root))
    if record is None or record["anchor_tx"] != anchor_tx:
        raise ChainRefused(f"rating batch {root} is not on the chain after its transaction")
    batch = session.get(RatingBatchRow, root)
    if batch is None:
        batch = _store(session, record, b"".join(leaves), entries, details)
    return batch


def _anchor(rt: Runtime, root: str, count: int, model_sha: str) -> str:
    receipt = rt.ctx.relay(
        "anchors",
        "anchor",
        {"root": root, "count": count, "label": ANCHOR_LABEL, "metadata": {"model": model_sha}},
    )
    if receipt["status"] != "ok" and receipt.get("code") != "already_anchored":
        raise rt.chain.refusal(receipt)
    rt.chain.settle(receipt)
    anchor_tx = rt.ctx.ledger.read("anchors", f"root:{rt.ctx.operator_org}:{root}")
    if anchor_tx is None:
        raise ChainRefused(f"the anchor of {root} is not on the chain after its transaction")
    return str(anchor_tx)


def record_hash(record: dict[str, Any]) -> bytes:
    """`contract_terms.record_hash` of a record of strings and lists of strings."""
    return hashlib.sha256(_canonical_strings(record).encode()).digest()


def _store(
    session: Session,
    record: dict[str, Any],
    leaves: bytes,
    entries: list[dict[str, Any]],
    details: dict[str, dict[str, Any]],
) -> RatingBatchRow:
    batch = RatingBatchRow(
        root=record["root"],
        model=record["model"],
        count=record["count"],
        anchor_tx=record["anchor_tx"],
        tx=record["tx"],
        height=record["height"],
        time_ms=record["time_ms"],
        clock=record["clock"],
        leaves=leaves,
    )
    session.add(batch)
    rows = [
        {
            "uscc": e["uscc"],
            "root": batch.root,
            "index": i,
            "clock": batch.clock,
            "model": batch.model,
            "pd": e["pd"],
            "score": e["score"],
            "grade": e["grade"],
            "period": e["period"],
            "features_hash": e["features_hash"],
            "reasons": details[e["uscc"]]["reasons"],
        }
        for i, e in enumerate(entries)
    ]
    # Core executemany: the ORM's bulk path costs several times more per row
    connection = session.connection()
    for start in range(0, len(rows), _INSERT_CHUNK):
        connection.execute(insert(BatchRatingRow), rows[start : start + _INSERT_CHUNK])
    return batch


def pending(session: Session, uscc: str, current: dict[str, Any] | None) -> BatchRatingRow | None:
    """The SME's latest batch rating if it is newer than its `rating:{uscc}` entry, else None."""
    row = session.scalars(
        select(BatchRatingRow)
        .where(BatchRatingRow.uscc == uscc)
        .order_by(BatchRatingRow.clock.desc())
        .limit(1)
    ).first()
    if row is None or (current is not None and int(current.get("clock", 0)) >= row.clock):
        return None
    return row


def chain_entry(row: BatchRatingRow) -> dict[str, Any]:
    """The rating as the contract's `RatingEntry` (what the batch's record was built from)."""
    return {
        "uscc": row.uscc,
        "pd": row.pd,
        "score": row.score,
        "grade": row.grade,
        "reasons": [r["code"] for r in row.reasons],
        "features_hash": row.features_hash,
        "period": row.period,
    }


def inquiry_proof_args(session: Session, row: BatchRatingRow) -> dict[str, Any]:
    """The `batch` argument of `credit.record_inquiry` that makes this rating current."""
    batch = _batch(session, row.root)
    return {
        "root": row.root,
        "index": row.index,
        "path": [p.hex() for p in _path(batch, row.index)],
        "rating": chain_entry(row),
    }


def record_bundle(
    rt: Runtime, session: Session, root: str, uscc: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The rating's canonical record and its `record` bundle (None if not from a batch here)."""
    batch = session.get(RatingBatchRow, root)
    row = session.scalars(
        select(BatchRatingRow).where(BatchRatingRow.root == root, BatchRatingRow.uscc == uscc)
    ).first()
    if batch is None or row is None:
        return None
    bundle = rt.chain.committed_proof(batch.anchor_tx)
    record = contract_terms.rating_record(chain_entry(row), batch.model)
    proof = {
        "hash": contract_terms.record_hash(record).hex(),
        "index": row.index,
        "size": batch.count,
        "path": [p.hex() for p in _path(batch, row.index)],
    }
    return record, {**bundle, "kind": "record", "record": proof}


def mirror_current(session: Session, row: BatchRatingRow, record: dict[str, Any]) -> None:
    """Keep the off-chain copy (reasons with values) of a batch rating made current."""
    exists = session.scalars(
        select(RatingRow.id).where(RatingRow.uscc == row.uscc, RatingRow.seq == record["seq"])
    ).first()
    if exists is not None:
        return
    session.add(
        RatingRow(
            uscc=row.uscc,
            seq=record["seq"],
            tx=record["tx"],
            height=record["height"],
            time_ms=record["time_ms"],
            model=row.model,
            pd=float(row.pd),
            score=float(row.score),
            grade=row.grade,
            period=row.period,
            features_hash=row.features_hash,
            reasons=row.reasons,
        )
    )


def _batch(session: Session, root: str) -> RatingBatchRow:
    batch = session.get(RatingBatchRow, root)
    if batch is None:
        raise ChainRefused(f"rating batch {root} is missing from the service database")
    return batch


def _path(batch: RatingBatchRow, index: int) -> list[bytes]:
    return _levels(batch.root, batch.leaves).path(index)


class _Tree:
    """Every level of a batch's Merkle tree, so each audit path is a walk up, not a rebuild."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.levels = [leaves]
        level = leaves
        while len(level) > 1:
            nxt = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    def path(self, index: int) -> list[bytes]:
        out = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index //= 2
        return out


@lru_cache(maxsize=8)
def _levels(root: str, leaves: bytes) -> _Tree:
    tree = _Tree([leaves[i : i + 32] for i in range(0, len(leaves), 32)])
    # Verify the stored leaves are the anchored batch's
    if tree.levels[-1][0].hex() != root:
        raise ChainRefused(f"the stored leaves of rating batch {root} do not give its root")
    return tree
