"""A bank's read of a rating: only under a live consent, recorded on the chain first."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from chain.auth import Caller
from services.credit import contract_terms, schemas
from services.credit._service_errors import (
    ConsentRequired,
    RatingNotFound,
)
from services.credit.models import (
    InquiryRow,
)
from services.credit.runtime import Runtime
from services.credit.service import batch_ratings
from services.credit.service.common import now_ms
from services.credit.service.ratings import rating_from_chain
from services.credit.service.registry import get_sme


def bank_read_rating(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str, purpose: str
) -> schemas.BankAnswer:
    """A bank reads a rating under a live consent; the read is recorded on the chain first."""
    sme = get_sme(rt=rt, session=session, uscc=uscc)
    ledger = rt.ctx.ledger
    consent = ledger.read(
        contract_terms.NAMESPACE, contract_terms.consent_key(sme.uscc, caller.org, purpose)
    )
    problem = contract_terms.consent_problem(consent, now_ms())
    # Verify the SME consented to this bank, for this purpose, now
    if problem is not None:
        raise ConsentRequired(
            f"{caller.org} may not read the rating of {sme.uscc} for {purpose}: {problem[1]};"
            f" the SME ({sme.org}) grants consent by signing credit.grant_consent",
            code=problem[0],
        )
    current = ledger.read(contract_terms.NAMESPACE, contract_terms.rating_key(sme.uscc))
    pending = batch_ratings.pending(session, sme.uscc, current)
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
        args["batch"] = batch_ratings.inquiry_proof_args(session, pending)
    receipt = rt.chain.relay("record_inquiry", args)
    event = next(e["data"] for e in receipt["events"] if e["name"] == "inquiry")
    inquiry = ledger.read(
        contract_terms.NAMESPACE, contract_terms.inquiry_key(sme.uscc, event["n"])
    )
    session.merge(InquiryRow(**inquiry_columns(inquiry)))
    proof = ledger.state_proof(contract_terms.NAMESPACE, contract_terms.rating_key(sme.uscc))
    if pending is not None:
        batch_ratings.mirror_current(session, pending, proof["value"])
    anchored = (
        batch_ratings.record_bundle(rt, session, proof["value"]["batch"], sme.uscc)
        if proof["value"].get("batch")
        else None
    )
    return schemas.BankAnswer(
        rating=rating_from_chain(session=session, record=proof["value"], with_values=False),
        proof=proof,
        inquiry=schemas.InquiryOut(**inquiry_columns(inquiry)),
        inquiry_proof=rt.chain.committed_proof(str(receipt["tx"])),
        rating_record=anchored[0] if anchored else None,
        record_proof=anchored[1] if anchored else None,
        verify="save `proof` (and `inquiry_proof`) as JSON and run"
        " `smartcity verify-proof FILE --genesis data/genesis.json` (the chain's genesis file;"
        " data/ in a `smartcity up` folder), or call services.credit.sdk.verify_rating_answer",
    )


def inquiry_columns(record: dict[str, Any]) -> dict[str, Any]:
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
