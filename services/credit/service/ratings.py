"""Ratings: score SMEs with the active model, write them to the chain, read them back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.credit import contract_terms, schemas
from services.credit._service_errors import (
    BadInput,
    ChainRefused,
    ModelUnavailable,
    RatingNotFound,
)
from services.credit.errors import CreditError
from services.credit.models import (
    BatchRatingRow,
    RatingBatchRow,
    RatingRow,
    SmeRow,
)
from services.credit.runtime import Runtime
from services.credit.scoring.features import describe_feature
from services.credit.service import batch_ratings, vectors
from services.credit.service.governance import ensure_models_registered
from services.credit.service.registry import owned
from services.credit.uscc import validate_uscc

RATINGS_PER_TX = 200


def active_model(*, rt: Runtime) -> str:
    """The governance-approved model this service rates with, or a 503 saying how to get one."""
    ensure_models_registered(rt=rt)
    chosen = rt.models.active(rt.ctx.ledger)
    if chosen is None:
        installed = ", ".join(sorted(rt.models.versions)) or "none"
        raise ModelUnavailable(
            "no installed model is approved by governance (installed: "
            f"{installed}); a committee member proposes governance invoke"
            " credit.approve_model {sha256} and the committee votes",
            code="no_approved_model",
        )
    return chosen[0]


def rate_smes(
    *,
    rt: Runtime,
    session: Session,
    caller: Caller,
    usccs: Sequence[str],
    include_ratings: bool = False,
    anchored: bool | None = None,
) -> schemas.BatchOut:
    """Rate many SMEs on their latest features with the active model and write it to the chain.

    Anchored, the ratings go to the chain as one anchored Merkle root and one batch record,
    whatever their number; otherwise each is its own `rating:{uscc}` entry, 200 per transaction.
    By default a batch is anchored when it would not fit in one transaction.
    """
    started = time.perf_counter()
    with batch_ratings.gc_paused(len(usccs) > RATINGS_PER_TX):
        result = _rate_smes(rt, session, caller, usccs, include_ratings, anchored)
    return result.model_copy(update={"seconds": round(time.perf_counter() - started, 3)})


def _rate_smes(
    rt: Runtime,
    session: Session,
    caller: Caller,
    usccs: Sequence[str],
    include_ratings: bool,
    anchored: bool | None,
) -> schemas.BatchOut:
    started = time.perf_counter()
    model_sha = active_model(rt=rt)
    failed: list[schemas.BatchFailure] = []
    codes = _valid_codes(usccs, failed)
    known = _known_smes(session, codes)
    names = rt.models.load(model_sha).feature_names
    latest = vectors.latest_features(session, [c for c in codes if c in known], names)
    for code in codes:
        if code not in known:
            failed.append(
                schemas.BatchFailure(
                    uscc=code, code="unknown_sme", message=f"SME {code} is not registered"
                )
            )
        elif known[code] != caller.org and "agency" not in caller.roles:
            failed.append(
                schemas.BatchFailure(
                    uscc=code, code="not_your_sme", message=f"{caller.org} may not rate {code}"
                )
            )
        elif code not in latest:
            failed.append(
                schemas.BatchFailure(
                    uscc=code, code="no_statements", message=f"no statements uploaded for {code}"
                )
            )
    todo = [
        c for c in codes if c in latest and (known[c] == caller.org or "agency" in caller.roles)
    ]
    if not todo:
        return schemas.BatchOut(
            model=model_sha,
            rated=0,
            failed=failed,
            txs=[],
            seconds=round(time.perf_counter() - started, 3),
        )
    entries, details = _score(rt, model_sha, todo, latest)
    if anchored or (anchored is None and len(entries) > RATINGS_PER_TX):
        batch = batch_ratings.anchor_ratings(rt, session, model_sha, entries, details)
        return schemas.BatchOut(
            model=model_sha,
            rated=len(todo),
            failed=failed,
            txs=[batch.anchor_tx, batch.tx],
            root=batch.root,
            seconds=round(time.perf_counter() - started, 3),
        )
    chunks = [entries[i : i + RATINGS_PER_TX] for i in range(0, len(entries), RATINGS_PER_TX)]
    batches = [{"model": model_sha, "ratings": chunk} for chunk in chunks]
    if len(batches) == 1:
        txs = [str(rt.chain.relay("record_ratings", batches[0])["tx"])]
    else:
        txs = rt.chain.relay_many("record_ratings", batches)
    rows = _mirror_ratings(rt, session, todo, details, set(txs))
    return schemas.BatchOut(
        model=model_sha,
        rated=len(todo),
        failed=failed,
        txs=txs,
        seconds=round(time.perf_counter() - started, 3),
        ratings=[_rating_out(r) for r in rows] if include_ratings else None,
    )


def rate_sme(*, rt: Runtime, session: Session, caller: Caller, uscc: str) -> schemas.RatingOut:
    """Rate one SME; refusals come back as that SME's error."""
    sme = owned(rt=rt, session=session, caller=caller, uscc=uscc, also=("agency",))
    result = rate_smes(
        rt=rt,
        session=session,
        caller=caller,
        usccs=[sme.uscc],
        include_ratings=True,
        anchored=False,
    )
    if result.failed:
        failure = result.failed[0]
        raise BadInput(failure.message, code=failure.code)
    if not result.ratings:
        raise ChainRefused(f"the rating of {sme.uscc} was superseded while it was written")
    return result.ratings[0]


def _valid_codes(usccs: Sequence[str], failed: list[schemas.BatchFailure]) -> list[str]:
    codes: list[str] = []
    seen: set[str] = set()
    for raw in usccs:
        try:
            code = validate_uscc(raw)
        except CreditError as exc:
            failed.append(schemas.BatchFailure(uscc=raw, code="invalid_uscc", message=str(exc)))
            continue
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def _known_smes(session: Session, codes: list[str]) -> dict[str, str]:
    known: dict[str, str] = {}
    for start in range(0, len(codes), 1000):
        part = codes[start : start + 1000]
        rows = session.execute(select(SmeRow.uscc, SmeRow.org).where(SmeRow.uscc.in_(part)))
        known.update({str(uscc): str(org) for uscc, org in rows})
    return known


def _score(
    rt: Runtime, model_sha: str, codes: list[str], latest: dict[str, vectors.Latest]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Chain entries (no feature values) and off-chain details (reasons with values)."""
    model = rt.models.load(model_sha)
    names = model.feature_names
    frame = pd.DataFrame(np.vstack([latest[c].values for c in codes]), columns=names)
    try:
        ratings = model.rate_many(frame)
    except CreditError as exc:
        raise ModelUnavailable(f"the active model cannot rate stored features: {exc}") from exc
    entries, details = [], {}
    for code, rating in zip(codes, ratings, strict=True):
        feature = latest[code]
        pd_text, score_text = f"{rating.probability_of_default:.8f}", f"{rating.score:.1f}"
        entry: dict[str, Any] = {
            "uscc": code,
            "pd": pd_text,
            "score": score_text,
            "grade": rating.grade,
            "reasons": [r.feature for r in rating.reasons],
            "features_hash": feature.features_hash,
            "period": feature.period,
        }
        entries.append(entry)
        details[code] = {
            **entry,
            "pd": float(pd_text),
            "score": float(score_text),
            "model": model_sha,
            "reasons": [
                {
                    "code": r.feature,
                    "description": r.description,
                    "category": r.category,
                    "points": r.points,
                    "value": r.value,
                }
                for r in rating.reasons
            ],
        }
    return entries, details


def _mirror_ratings(
    rt: Runtime,
    session: Session,
    codes: list[str],
    details: dict[str, dict[str, Any]],
    txs: set[str],
) -> list[dict[str, Any]]:
    rows = []
    for code in codes:
        record = rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.rating_key(code))
        if record is None or record["tx"] not in txs:
            continue  # superseded by a concurrent rating: that request mirrors its own
        rows.append(
            {
                **details[code],
                "seq": record["seq"],
                "tx": record["tx"],
                "height": record["height"],
                "time_ms": record["time_ms"],
            }
        )
    if rows:
        session.execute(insert(RatingRow), rows)
    return rows


def own_rating(*, rt: Runtime, session: Session, caller: Caller, uscc: str) -> schemas.RatingOut:
    """The SME's current rating as the SME sees it (with its own feature values)."""
    sme = owned(rt=rt, session=session, caller=caller, uscc=uscc)
    record = rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.rating_key(sme.uscc))
    pending = batch_ratings.pending(session, sme.uscc, record)
    if pending is not None:
        return _rating_from_batch(session, pending)
    if record is None:
        raise RatingNotFound(f"SME {sme.uscc} has not been rated yet")
    return rating_from_chain(session=session, record=record, with_values=True)


def rating_history(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.RatingHistory:
    """The SME's ratings, newest first; feature values only for the SME itself.

    Every rating that became its current rating on the chain, and every batch rating no bank
    read (anchored by its batch's root, `seq` null); a batch rating a bank read is listed once.
    """
    sme = owned(rt=rt, session=session, caller=caller, uscc=uscc, also=("regulator",))
    rows = session.scalars(select(RatingRow).where(RatingRow.uscc == sme.uscc)).all()
    ratings = [_rating_from_row(row) for row in rows]
    made_current = {r.tx for r in rows}  # a batch rating made current keeps its batch's tx
    for row in session.scalars(select(BatchRatingRow).where(BatchRatingRow.uscc == sme.uscc)):
        unread = _rating_from_batch(session, row)
        if unread.tx not in made_current:
            ratings.append(unread)
    ratings.sort(key=lambda r: (r.height, r.seq or 0), reverse=True)
    own = caller.org == sme.org
    return schemas.RatingHistory(
        uscc=sme.uscc, ratings=[_without_values(r, keep=own) for r in ratings]
    )


def _rating_from_row(row: RatingRow) -> schemas.RatingOut:
    return schemas.RatingOut(
        uscc=row.uscc,
        seq=row.seq,
        pd=row.pd,
        score=row.score,
        grade=row.grade,
        period=row.period,
        model=row.model,
        features_hash=row.features_hash,
        reasons=[schemas.ReasonOut(**r) for r in row.reasons],
        tx=row.tx,
        height=row.height,
        time_ms=row.time_ms,
    )


def _without_values(rating: schemas.RatingOut, *, keep: bool) -> schemas.RatingOut:
    if keep:
        return rating
    reasons = [r.model_copy(update={"value": None}) for r in rating.reasons]
    return rating.model_copy(update={"reasons": reasons})


def _rating_from_batch(session: Session, row: BatchRatingRow) -> schemas.RatingOut:
    """A batch rating not yet made current on the chain (no bank has read it)."""
    batch = session.get(RatingBatchRow, row.root)
    if batch is None:
        raise RatingNotFound(f"rating batch {row.root} is missing from the service database")
    return schemas.RatingOut(
        uscc=row.uscc,
        seq=None,
        pd=float(row.pd),
        score=float(row.score),
        grade=row.grade,
        period=row.period,
        model=row.model,
        features_hash=row.features_hash,
        reasons=[schemas.ReasonOut(**r) for r in row.reasons],
        tx=batch.tx,
        height=batch.height,
        time_ms=batch.time_ms,
        batch=row.root,
    )


def rating_from_chain(
    *, session: Session, record: dict[str, Any], with_values: bool
) -> schemas.RatingOut:
    row = session.scalars(
        select(RatingRow).where(RatingRow.uscc == record["uscc"], RatingRow.seq == record["seq"])
    ).first()
    if row is not None and row.tx == record["tx"]:
        reasons = [
            schemas.ReasonOut(**{**r, "value": r["value"] if with_values else None})
            for r in row.reasons
        ]
    else:
        reasons = [_described(code) for code in record["reasons"]]
    return schemas.RatingOut(
        uscc=record["uscc"],
        seq=record["seq"],
        pd=float(record["pd"]),
        score=float(record["score"]),
        grade=record["grade"],
        period=record["period"],
        model=record["model"],
        features_hash=record["features_hash"],
        reasons=reasons,
        tx=record["tx"],
        height=record["height"],
        time_ms=record["time_ms"],
        batch=record.get("batch"),
    )


def _described(code: str) -> schemas.ReasonOut:
    description, category = describe_feature(code)
    return schemas.ReasonOut(code=code, description=description, category=category, points=None)


def _rating_out(row: dict[str, Any]) -> schemas.RatingOut:
    return schemas.RatingOut.model_validate(row)
