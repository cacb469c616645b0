"""The credit domain: SMEs, statements, ratings, consents, inquiries and model versions.

Keyword-only functions; each takes the request's session (one transaction per request) and the
authenticated caller, writes the chain first, then mirrors into the service database so a retry
completes rather than duplicates. They raise the package's errors, never HTTPException.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.common.chain import parse_signed
from services.common.errors import Forbidden
from services.credit import _batch, _vectors, contract, schemas
from services.credit._history import (
    amounts_of,
    check_continuity,
    features_by_period,
    features_hash,
    period_sort_key,
)
from services.credit._modelstore import chain_registration
from services.credit._service_errors import (
    AlreadyExists,
    BadInput,
    ChainRefused,
    ConsentRequired,
    ModelNotFound,
    ModelUnavailable,
    NotYourSme,
    RatingNotFound,
    SmeNotFound,
)
from services.credit._upload import UploadedFile
from services.credit.errors import CreditError
from services.credit.features import describe_feature
from services.credit.models import (
    BatchRatingRow,
    ConsentRow,
    FeatureRow,
    FeatureVectorRow,
    InquiryRow,
    RatingBatchRow,
    RatingRow,
    SmeRow,
    StatementRow,
    UploadRow,
)
from services.credit.runtime import Runtime
from services.credit.statements import load_statements
from services.credit.uscc import validate_uscc

log = logging.getLogger(__name__)
RATINGS_PER_TX = 200
SMES_PER_TX = contract.MAX_BATCH
_ORG = re.compile(contract.ORG)
_DID = re.compile(contract.DID)


def now_ms() -> int:
    return int(time.time() * 1000)


# -- SMEs ----------------------------------------------------------------------------------


def register_sme(
    *, rt: Runtime, session: Session, caller: Caller, entry: schemas.SmeRegistration
) -> SmeRow:
    """Register one SME on the chain (bound to its org and key) and in the service database."""
    return register_smes(rt=rt, session=session, caller=caller, entries=[entry])[0]


def register_smes(
    *,
    rt: Runtime,
    session: Session,
    caller: Caller,
    entries: Sequence[schemas.SmeRegistration],
) -> list[SmeRow]:
    """Register SMEs; every entry is checked before anything is written."""
    prepared = [_prepare_registration(rt, caller, e, i) for i, e in enumerate(entries)]
    codes = [p["uscc"] for p in prepared]
    if len(set(codes)) != len(codes):
        raise BadInput("the same USCC is listed twice", code="duplicate_uscc")
    todo = []
    for args in prepared:
        on_chain = rt.ctx.ledger.read(contract.NAMESPACE, contract.sme_key(args["uscc"]))
        # Verify a retry names the same organisation; then it only completes the mirror
        if on_chain is not None and on_chain["org"] != args["org"]:
            raise AlreadyExists(
                f"SME {args['uscc']} is already registered to {on_chain['org']}",
                code="sme_exists",
            )
        if on_chain is None:
            todo.append(args)
    chunks = [todo[i : i + SMES_PER_TX] for i in range(0, len(todo), SMES_PER_TX)]
    if len(chunks) == 1:
        rt.chain.relay("register_smes", {"smes": chunks[0]})
    elif chunks:
        rt.chain.relay_many("register_smes", [{"smes": c} for c in chunks])
    names = {p["uscc"]: e.name for p, e in zip(prepared, entries, strict=True)}
    return [_mirror_sme(rt, session, code, names[code]) for code in codes]


def _prepare_registration(
    rt: Runtime, caller: Caller, entry: schemas.SmeRegistration, index: int
) -> dict[str, Any]:
    code = validate_uscc(entry.uscc)
    where = f"smes[{index}]" if index else "body"
    if "agency" in caller.roles or "operator" in caller.roles:
        if entry.org is None:
            raise BadInput(f"{where}.org: an agency names the SME's organisation", code="no_org")
        org, key = entry.org, None
    else:
        # Verify an SME registers itself only
        if entry.org not in (None, caller.org):
            raise NotYourSme(f"{caller.org} cannot register an SME for {entry.org}")
        org, key = caller.org, caller.key
    if not _ORG.match(org):
        raise BadInput(f"{where}.org: {org!r} is not an organisation id", code="bad_org")
    membership = rt.ctx.ledger.read("membership", f"org:{org}")
    if membership is None or membership["status"] != "active":
        raise BadInput(f"{where}.org: no active organisation {org} on the chain", code="no_org")
    if "sme" not in membership["roles"]:
        raise BadInput(f"{where}.org: organisation {org} lacks role sme", code="not_sme")
    if entry.did is not None and not _DID.match(entry.did):
        raise BadInput(f"{where}.did: {entry.did!r} is not a DID (did:method:id)", code="bad_did")
    args: dict[str, Any] = {"uscc": code, "org": org}
    if key is not None:
        args["key"] = key
    if entry.did is not None:
        args["did"] = entry.did
    return args


def _mirror_sme(rt: Runtime, session: Session, uscc: str, name: str | None) -> SmeRow:
    record = rt.ctx.ledger.read(contract.NAMESPACE, contract.sme_key(uscc))
    row = session.get(SmeRow, uscc) or SmeRow(uscc=uscc)
    row.org, row.key, row.did = record["org"], record["key"], record["did"]
    row.registered_by, row.tx, row.height = record["registered_by"], record["tx"], record["height"]
    row.name = name if name is not None else row.name
    session.add(row)
    return row


def get_sme(*, rt: Runtime, session: Session, uscc: str) -> SmeRow:
    """A registered SME (mirrored from the chain if this database has not seen it yet)."""
    code = validate_uscc(uscc)
    row = session.get(SmeRow, code)
    if row is not None:
        return row
    if rt.ctx.ledger.read(contract.NAMESPACE, contract.sme_key(code)) is None:
        raise SmeNotFound(f"SME {code} is not registered")
    return _mirror_sme(rt, session, code, None)


def list_smes(*, session: Session, caller: Caller) -> list[SmeRow]:
    query = select(SmeRow).order_by(SmeRow.uscc)
    if "sme" in caller.roles and not caller.roles & {"agency", "regulator"}:
        query = query.where(SmeRow.org == caller.org)
    return list(session.scalars(query.limit(1000)))


def _owned(rt: Runtime, session: Session, caller: Caller, uscc: str, *also: str) -> SmeRow:
    """The SME, if the caller is its own organisation or holds one of `also` roles."""
    sme = get_sme(rt=rt, session=session, uscc=uscc)
    if sme.org != caller.org and not caller.roles.intersection(also):
        raise NotYourSme(f"{caller.org} is not {sme.uscc}'s organisation ({sme.org})")
    return sme


# -- statements ----------------------------------------------------------------------------


def upload_statements(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str, upload: UploadedFile
) -> schemas.UploadOut:
    """Validate a statement file; store it and its features, or store nothing and say why."""
    sme = _owned(rt, session, caller, uscc, "agency")
    frame = load_statements(upload.content, file_format=upload.file_format)
    stored = {
        r.period: r
        for r in session.scalars(select(StatementRow).where(StatementRow.uscc == sme.uscc))
    }
    check_continuity(list(stored), frame)
    upload_id = uuid.uuid4().hex
    replaced = []
    for record in frame.to_dict(orient="records"):
        period = str(record["period"])
        row = stored.get(period)
        if row is None:
            row = StatementRow(uscc=sme.uscc, period=period)
            stored[period] = row
        else:
            replaced.append(period)
        row.currency, row.amounts, row.upload_id = (
            str(record["currency"]),
            amounts_of({str(k): v for k, v in record.items()}),
            upload_id,
        )
        session.add(row)
    hashes = _store_features(session, sme.uscc, list(stored.values()))
    periods = [str(p) for p in frame["period"]]
    session.add(
        UploadRow(
            id=upload_id,
            uscc=sme.uscc,
            filename=upload.filename,
            rows=len(frame),
            periods=periods,
            sha256=hashlib.sha256(upload.content).hexdigest(),
            uploaded_by=caller.org,
            time_ms=now_ms(),
        )
    )
    return schemas.UploadOut(
        upload_id=upload_id,
        uscc=sme.uscc,
        filename=upload.filename,
        sha256=hashlib.sha256(upload.content).hexdigest(),
        rows=len(frame),
        periods=periods,
        replaced=replaced,
        features_hash={p: hashes[p] for p in periods},
    )


def _store_features(session: Session, uscc: str, rows: list[StatementRow]) -> dict[str, str]:
    computed = features_by_period([r.period for r in rows], [r.amounts for r in rows])
    hashes = {}
    for period, values in computed.items():
        row = session.get(FeatureRow, (uscc, period)) or FeatureRow(uscc=uscc, period=period)
        row.sort_key, row.features = period_sort_key(period), values
        row.features_hash = hashes[period] = features_hash(uscc, period, values)
        session.add(row)
        session.merge(FeatureVectorRow(uscc=uscc, period=period, values=_vectors.pack(values)))
    return hashes


def list_statements(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.StatementList:
    sme = _owned(rt, session, caller, uscc, "agency")
    rows = session.scalars(select(StatementRow).where(StatementRow.uscc == sme.uscc))
    features = {
        f.period: f for f in session.scalars(select(FeatureRow).where(FeatureRow.uscc == sme.uscc))
    }
    periods = [
        schemas.StatementPeriod(
            period=r.period,
            currency=r.currency,
            amounts=r.amounts,
            features_hash=features[r.period].features_hash if r.period in features else None,
            features=features[r.period].features if r.period in features else None,
        )
        for r in sorted(rows, key=lambda r: period_sort_key(r.period))
    ]
    return schemas.StatementList(uscc=sme.uscc, periods=periods)


# -- ratings -------------------------------------------------------------------------------


def active_model(rt: Runtime) -> str:
    """The governance-approved model this service rates with, or a 503 saying how to get one."""
    ensure_models_registered(rt)
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
    with _batch.gc_paused(len(usccs) > RATINGS_PER_TX):
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
    model_sha = active_model(rt)
    failed: list[schemas.BatchFailure] = []
    codes = _valid_codes(usccs, failed)
    known = _known_smes(session, codes)
    names = rt.models.load(model_sha).feature_names
    latest = _vectors.latest_features(session, [c for c in codes if c in known], names)
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
        batch = _batch.anchor_ratings(rt, session, model_sha, entries, details)
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
    sme = _owned(rt, session, caller, uscc, "agency")
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
    rt: Runtime, model_sha: str, codes: list[str], latest: dict[str, _vectors.Latest]
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
        record = rt.ctx.ledger.read(contract.NAMESPACE, contract.rating_key(code))
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
    sme = _owned(rt, session, caller, uscc)
    record = rt.ctx.ledger.read(contract.NAMESPACE, contract.rating_key(sme.uscc))
    pending = _batch.pending(session, sme.uscc, record)
    if pending is not None:
        return _rating_from_batch(session, pending)
    if record is None:
        raise RatingNotFound(f"SME {sme.uscc} has not been rated yet")
    return _rating_from_chain(session, record, with_values=True)


def rating_history(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.RatingHistory:
    """The SME's ratings, newest first; feature values only for the SME itself.

    Every rating that became its current rating on the chain, and every batch rating no bank
    read (anchored by its batch's root, `seq` null); a batch rating a bank read is listed once.
    """
    sme = _owned(rt, session, caller, uscc, "regulator")
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
        uscc=row.uscc, seq=row.seq, pd=row.pd, score=row.score, grade=row.grade,
        period=row.period, model=row.model, features_hash=row.features_hash,
        reasons=[schemas.ReasonOut(**r) for r in row.reasons], tx=row.tx, height=row.height,
        time_ms=row.time_ms,
    )  # fmt: skip


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


def _rating_from_chain(
    session: Session, record: dict[str, Any], *, with_values: bool
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


# -- the bank's read -----------------------------------------------------------------------


def bank_read_rating(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str, purpose: str
) -> schemas.BankAnswer:
    """A bank reads a rating under a live consent; the read is recorded on the chain first."""
    sme = get_sme(rt=rt, session=session, uscc=uscc)
    ledger = rt.ctx.ledger
    consent = ledger.read(contract.NAMESPACE, contract.consent_key(sme.uscc, caller.org, purpose))
    problem = contract.consent_problem(consent, now_ms())
    # Verify the SME consented to this bank, for this purpose, now
    if problem is not None:
        raise ConsentRequired(
            f"{caller.org} may not read the rating of {sme.uscc} for {purpose}: {problem[1]};"
            f" the SME ({sme.org}) grants consent by signing credit.grant_consent",
            code=problem[0],
        )
    current = ledger.read(contract.NAMESPACE, contract.rating_key(sme.uscc))
    pending = _batch.pending(session, sme.uscc, current)
    if current is None and pending is None:
        raise RatingNotFound(f"SME {sme.uscc} has not been rated yet")
    args: dict[str, Any] = {
        "uscc": sme.uscc,
        "bank": caller.org,
        "bank_key": caller.key,
        "purpose": purpose,
        "rating_seq": current["seq"] if current is not None else 0,
    }
    if pending is not None:
        # The read makes the batch rating current: the contract checks it against its root
        args["rating_seq"] = args["rating_seq"] + 1
        args["batch"] = _batch.inquiry_proof_args(session, pending)
    receipt = rt.chain.relay("record_inquiry", args)
    event = next(e["data"] for e in receipt["events"] if e["name"] == "inquiry")
    inquiry = ledger.read(contract.NAMESPACE, contract.inquiry_key(sme.uscc, event["n"]))
    session.merge(InquiryRow(**_inquiry_columns(inquiry)))
    proof = ledger.state_proof(contract.NAMESPACE, contract.rating_key(sme.uscc))
    if pending is not None:
        _batch.mirror_current(session, pending, proof["value"])
    anchored = (
        _batch.record_bundle(rt, session, proof["value"]["batch"], sme.uscc)
        if proof["value"].get("batch")
        else None
    )
    return schemas.BankAnswer(
        rating=_rating_from_chain(session, proof["value"], with_values=False),
        proof=proof,
        inquiry=schemas.InquiryOut(**_inquiry_columns(inquiry)),
        inquiry_proof=rt.chain.committed_proof(str(receipt["tx"])),
        rating_record=anchored[0] if anchored else None,
        record_proof=anchored[1] if anchored else None,
        verify="save `proof` (and `inquiry_proof`) as JSON and run"
        " `smartcity verify-proof FILE --genesis data/genesis.json` (the chain's genesis file;"
        " data/ in a `smartcity up` folder), or call services.credit.sdk.verify_rating_answer",
    )


def _inquiry_columns(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: record[k]
        for k in (
            "seq",
            "uscc",
            "n",
            "bank",
            "bank_key",
            "purpose",
            "rating_seq",
            "rating_tx",
            "model",
            "consent_tx",
            "tx",
            "height",
            "time_ms",
        )
    }


# -- consents ------------------------------------------------------------------------------


def submit_consent(
    *, rt: Runtime, session: Session, caller: Caller, raw_tx: dict[str, Any], grant: bool
) -> schemas.ConsentOut:
    """Submit the SME's own signed grant or revocation and mirror the consent."""
    method = "grant_consent" if grant else "revoke_consent"
    tx = parse_signed(raw_tx, signer=caller.key, contract_name=contract.NAMESPACE, methods={method})
    uscc = tx.args.get("uscc")
    if not isinstance(uscc, str):
        raise BadInput("the transaction's args name no uscc", code="bad_args")
    _owned(rt, session, caller, uscc)
    rt.chain.submit_signed(tx)
    record = rt.ctx.ledger.read(
        contract.NAMESPACE,
        contract.consent_key(tx.args["uscc"], tx.args["bank"], tx.args["purpose"]),
    )
    row = _mirror_consent(session, record)
    return _consent_out(row)


def _mirror_consent(session: Session, record: dict[str, Any]) -> ConsentRow:
    key = (record["uscc"], record["bank"], record["purpose"])
    row = session.get(ConsentRow, key) or ConsentRow(uscc=key[0], bank=key[1], purpose=key[2])
    row.start_ms, row.end_ms, row.status = record["start_ms"], record["end_ms"], record["status"]
    row.granted_tx, row.revoked_tx = record["granted_tx"], record["revoked_tx"]
    session.add(row)
    return row


def _consent_out(row: ConsentRow) -> schemas.ConsentOut:
    record = {
        "status": row.status,
        "start_ms": row.start_ms,
        "end_ms": row.end_ms,
        "revoked_tx": row.revoked_tx,
    }
    return schemas.ConsentOut(
        uscc=row.uscc,
        bank=row.bank,
        purpose=row.purpose,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        status=row.status,
        granted_tx=row.granted_tx,
        revoked_tx=row.revoked_tx,
        live=contract.consent_problem(record, now_ms()) is None,
    )


def list_consents(*, rt: Runtime, session: Session, caller: Caller) -> schemas.ConsentList:
    """Consents an SME granted, or those granted to a bank; each refreshed from the chain."""
    query = select(ConsentRow)
    if "bank" in caller.roles:
        query = query.where(ConsentRow.bank == caller.org)
    else:
        owned = select(SmeRow.uscc).where(SmeRow.org == caller.org)
        query = query.where(ConsentRow.uscc.in_(owned))
    out = []
    for row in session.scalars(query.order_by(ConsentRow.uscc, ConsentRow.bank)):
        record = rt.ctx.ledger.read(
            contract.NAMESPACE, contract.consent_key(row.uscc, row.bank, row.purpose)
        )
        out.append(_consent_out(_mirror_consent(session, record) if record else row))
    return schemas.ConsentList(consents=out)


# -- inquiries -----------------------------------------------------------------------------


def sme_inquiries(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.InquiryList:
    """Who read this SME's rating: the SME itself or a regulator asks; the chain is the truth."""
    sme = _owned(rt, session, caller, uscc, "regulator")
    ledger = rt.ctx.ledger
    total = int(ledger.read(contract.NAMESPACE, contract.inquiry_count_key(sme.uscc)) or 0)
    have = set(session.scalars(select(InquiryRow.n).where(InquiryRow.uscc == sme.uscc)))
    for n in range(1, total + 1):
        if n not in have:
            record = ledger.read(contract.NAMESPACE, contract.inquiry_key(sme.uscc, n))
            session.merge(InquiryRow(**_inquiry_columns(record)))
    rows = session.scalars(
        select(InquiryRow).where(InquiryRow.uscc == sme.uscc).order_by(InquiryRow.n.desc())
    )
    return schemas.InquiryList(total_on_chain=total, inquiries=[_inquiry_out(r) for r in rows])


def all_inquiries(
    *,
    rt: Runtime,
    session: Session,
    bank: str | None,
    uscc: str | None,
    limit: int,
    offset: int,
) -> schemas.InquiryList:
    """Every inquiry on the chain (the regulator's audit), newest first, optionally filtered."""
    ledger = rt.ctx.ledger
    total = int(ledger.read(contract.NAMESPACE, contract.TOTAL_INQUIRIES) or 0)
    count = session.scalar(select(func.count()).select_from(InquiryRow)) or 0
    if count < total:
        have = set(session.scalars(select(InquiryRow.seq)))
        for seq in range(1, total + 1):
            if seq not in have:
                pointer = ledger.read(contract.NAMESPACE, contract.inquiry_log_key(seq))
                record = ledger.read(
                    contract.NAMESPACE, contract.inquiry_key(pointer["uscc"], pointer["n"])
                )
                session.merge(InquiryRow(**_inquiry_columns(record)))
        session.flush()
    query = select(InquiryRow)
    if bank is not None:
        query = query.where(InquiryRow.bank == bank)
    if uscc is not None:
        query = query.where(InquiryRow.uscc == validate_uscc(uscc))
    rows = session.scalars(query.order_by(InquiryRow.seq.desc()).offset(offset).limit(limit))
    return schemas.InquiryList(total_on_chain=total, inquiries=[_inquiry_out(r) for r in rows])


def bank_inquiries(
    *, rt: Runtime, session: Session, bank: str, limit: int, offset: int
) -> schemas.InquiryList:
    """One bank's own reads, newest first; `total_on_chain` counts that bank's inquiries."""
    page = all_inquiries(rt=rt, session=session, bank=bank, uscc=None, limit=limit, offset=offset)
    mine = session.scalar(
        select(func.count()).select_from(InquiryRow).where(InquiryRow.bank == bank)
    )
    return page.model_copy(update={"total_on_chain": int(mine or 0)})


def _inquiry_out(row: InquiryRow) -> schemas.InquiryOut:
    return schemas.InquiryOut(**{k: getattr(row, k) for k in schemas.InquiryOut.model_fields})


# -- model versions ------------------------------------------------------------------------


def ensure_models_registered(rt: Runtime, *, wait: bool = True) -> None:
    """Register every installed model version on the chain (once) with its metrics."""
    for sha, version in rt.models.versions.items():
        if sha in rt.registered:
            continue
        if rt.ctx.ledger.read(contract.NAMESPACE, contract.model_key(sha)) is None:
            args = chain_registration(version)
            if wait:
                receipt = rt.ctx.relay(contract.NAMESPACE, "register_model", args)
                if receipt["status"] != "ok" and receipt["code"] != "model_exists":
                    raise rt.chain.refusal(receipt)
                rt.chain.settle(receipt)
            else:
                rt.ctx.relay(contract.NAMESPACE, "register_model", args, wait=False)
                continue
        rt.registered.add(sha)


def list_models(*, rt: Runtime) -> schemas.ModelList:
    ensure_models_registered(rt)
    chosen = rt.models.active(rt.ctx.ledger)
    active = chosen[0] if chosen else None
    models = [_model_out(rt, sha, active) for sha in sorted(rt.models.versions)]
    return schemas.ModelList(active=active, models=models)


def get_model(*, rt: Runtime, sha256: str) -> schemas.ModelDetail:
    ensure_models_registered(rt)
    chosen = rt.models.active(rt.ctx.ledger)
    out = _model_out(rt, sha256.lower(), chosen[0] if chosen else None)
    if out.chain is None and not out.installed:
        raise ModelNotFound(f"model {sha256} is neither registered nor installed")
    proof = rt.ctx.ledger.state_proof(contract.NAMESPACE, contract.model_key(sha256.lower()))
    return schemas.ModelDetail(**out.model_dump(), proof=proof)


def _model_out(rt: Runtime, sha: str, active: str | None) -> schemas.ModelOut:
    record = rt.ctx.ledger.read(contract.NAMESPACE, contract.model_key(sha))
    return schemas.ModelOut(
        sha256=sha,
        installed=sha in rt.models.versions,
        active=sha == active,
        status=record["status"] if record else "unregistered",
        data_sha256=record["data_sha256"] if record else None,
        metrics=record["metrics"] if record else None,
        chain=record,
    )


def submit_governance(
    *, rt: Runtime, caller: Caller, sha256: str, raw_tx: dict[str, Any]
) -> schemas.GovernanceOut:
    """Forward a committee member's own signed proposal or vote about a model version."""
    tx = parse_signed(
        raw_tx, signer=caller.key, contract_name="governance", methods={"propose", "vote"}
    )
    if tx.method == "propose":
        params = tx.args.get("params", {})
        # Verify the proposal is about this model's approval or retirement
        if (
            tx.args.get("action") != "invoke"
            or params.get("contract") != contract.NAMESPACE
            or params.get("method") not in ("approve_model", "retire_model")
            or params.get("args", {}).get("sha256") != sha256.lower()
        ):
            raise BadInput(
                f"a proposal here invokes credit.approve_model or credit.retire_model for {sha256}",
                code="wrong_proposal",
            )
    receipt = rt.chain.submit_signed(tx)
    chosen = rt.models.active(rt.ctx.ledger)
    return schemas.GovernanceOut(
        tx=receipt["tx"],
        height=receipt["height"],
        status=receipt["status"],
        events=receipt["events"],
        model=_model_out(rt, sha256.lower(), chosen[0] if chosen else None),
    )


def chain_params(*, rt: Runtime) -> schemas.ChainParams:
    height = rt.ctx.ledger.height()
    return schemas.ChainParams(
        chain_id=rt.ctx.genesis.chain_id, height=height, expiry_height=height + 1000
    )


def require_roles(caller: Caller, *roles: str) -> None:
    if not caller.roles.intersection(roles):
        raise Forbidden(f"organisation {caller.org} lacks role {' or '.join(roles)}")
