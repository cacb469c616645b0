"""What SMEs, banks and committee members need on their side of the credit service.

- An SME signs its own consent transactions (`grant_consent_tx`, `revoke_consent_tx`) and
  posts them (`{"tx": tx.to_json()}`) to /credit/consents and /credit/consents/revocations.
- A committee member signs a governance proposal or vote about a model version
  (`model_proposal_tx`, `vote_tx`) and posts it to /credit/models/{sha256}/governance.
- A bank checks an answer offline with `verify_rating_answer(answer, genesis)`: the rating is
  the value proven on the chain, and its read was recorded as an inquiry naming the bank; a
  rating from an anchored batch also comes with its record and the batch's `record` bundle.

`expiry_height` is the last block height the transaction may be included in: GET
/credit/chain-params suggests one (current height + 1000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from chain.encoding import canonical, sha256
from chain.errors import ProofError
from chain.genesis import Genesis
from chain.light import Proven, verify_bundle
from chain.suites import SuiteKey
from chain.tx import Tx, sign_tx

NAMESPACE = "credit"
Purpose = Literal["loan_application", "monitoring"]
_RATING_FIELDS = ("uscc", "grade", "model", "features_hash", "seq", "tx")
_RECORD_FIELDS = ("uscc", "pd", "score", "grade", "reasons", "features_hash", "period", "model")


def grant_consent_tx(
    key: SuiteKey,
    *,
    chain_id: str,
    expiry_height: int,
    uscc: str,
    bank: str,
    purpose: Purpose,
    end_ms: int,
    start_ms: int | None = None,
) -> Tx:
    """The SME's signed consent: `bank` may read its rating for `purpose` until `end_ms`."""
    args: dict[str, Any] = {"uscc": uscc, "bank": bank, "purpose": purpose, "end_ms": end_ms}
    if start_ms is not None:
        args["start_ms"] = start_ms
    return sign_tx(
        key,
        chain_id=chain_id,
        contract=NAMESPACE,
        method="grant_consent",
        args=args,
        expiry_height=expiry_height,
    )


def revoke_consent_tx(
    key: SuiteKey, *, chain_id: str, expiry_height: int, uscc: str, bank: str, purpose: Purpose
) -> Tx:
    """The SME's signed revocation of a consent it granted."""
    args = {"uscc": uscc, "bank": bank, "purpose": purpose}
    return sign_tx(
        key,
        chain_id=chain_id,
        contract=NAMESPACE,
        method="revoke_consent",
        args=args,
        expiry_height=expiry_height,
    )


def model_proposal_tx(
    key: SuiteKey,
    *,
    chain_id: str,
    expiry_height: int,
    sha256: str,
    action: Literal["approve_model", "retire_model"] = "approve_model",
    ttl_blocks: int = 10_000,
) -> Tx:
    """A committee member's governance proposal to approve (or retire) a model version."""
    params = {"contract": NAMESPACE, "method": action, "args": {"sha256": sha256}}
    args = {"action": "invoke", "params": params, "ttl_blocks": ttl_blocks}
    return sign_tx(
        key,
        chain_id=chain_id,
        contract="governance",
        method="propose",
        args=args,
        expiry_height=expiry_height,
    )


def vote_tx(
    key: SuiteKey, *, chain_id: str, expiry_height: int, proposal: str, approve: bool = True
) -> Tx:
    """A committee member's vote on a governance proposal (the proposing tx's hash)."""
    return sign_tx(
        key,
        chain_id=chain_id,
        contract="governance",
        method="vote",
        args={"proposal": proposal, "approve": approve},
        expiry_height=expiry_height,
    )


@dataclass(frozen=True)
class VerifiedRating:
    """A bank's answer, checked offline: the proven rating and the recorded inquiry."""

    rating: dict[str, Any]
    rating_proof: Proven
    inquiry_proof: Proven
    record_proof: Proven | None = None


def verify_rating_answer(answer: dict[str, Any], genesis: Genesis) -> VerifiedRating:
    """Verify a bank answer against the genesis alone, or raise ProofError saying why."""
    proven = verify_bundle(answer["proof"], genesis)
    value = proven.facts.get("value")
    rating = answer["rating"]
    # Verify the proof is of this SME's rating and shows exactly the rating answered
    if (proven.facts.get("namespace"), proven.facts.get("key")) != (
        NAMESPACE,
        f"rating:{rating['uscc']}",
    ):
        raise ProofError("the proof is not of this SME's rating")
    if (
        not isinstance(value, dict)
        or any(value.get(k) != rating.get(k) for k in _RATING_FIELDS)
        or float(value["pd"]) != rating["pd"]
        or float(value["score"]) != rating["score"]
    ):
        raise ProofError("the answered rating differs from the rating proven on the chain")
    if [r["code"] for r in rating["reasons"]] != value["reasons"]:
        raise ProofError("the answered reason codes differ from those on the chain")
    inquiry = verify_bundle(answer["inquiry_proof"], genesis)
    # Verify the read was recorded: a successful credit.record_inquiry for this SME
    if (inquiry.facts["contract"], inquiry.facts["method"], inquiry.facts["status"]) != (
        NAMESPACE,
        "record_inquiry",
        "ok",
    ):
        raise ProofError("the inquiry proof is not a successful credit.record_inquiry")
    args = answer["inquiry_proof"]["tx"]["args"]
    if args["uscc"] != rating["uscc"] or args["bank"] != answer["inquiry"]["bank"]:
        raise ProofError("the recorded inquiry is for another SME or bank")
    record = _verify_record(answer, value, genesis) if value.get("batch") else None
    return VerifiedRating(
        rating=value, rating_proof=proven, inquiry_proof=inquiry, record_proof=record
    )


def _verify_record(answer: dict[str, Any], value: dict[str, Any], genesis: Genesis) -> Proven:
    """Check a batch rating's record is the proven rating and sits in the anchored batch."""
    record, bundle = answer.get("rating_record"), answer.get("record_proof")
    if not isinstance(record, dict) or not isinstance(bundle, dict):
        raise ProofError("a batch rating's answer must carry rating_record and record_proof")
    proven = verify_bundle(bundle, genesis)
    # Verify the anchored record is exactly this rating, in the batch the chain names
    if proven.facts.get("record") != sha256(canonical(record)).hex():
        raise ProofError("the rating record is not the record the batch proof proves")
    if (proven.facts.get("batch_root"), proven.facts.get("tx")) != (
        value["batch"],
        value.get("anchor_tx"),
    ):
        raise ProofError("the record proof is of another batch than the proven rating's")
    if any(record.get(k) != value.get(k) for k in _RECORD_FIELDS):
        raise ProofError("the anchored rating record differs from the rating proven on the chain")
    return proven
