"""Verify a zero-knowledge predicate (age at least, residency) against the signed commitment."""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from services.identity.credentials.jose import json_bytes as canonical_json
from services.identity.errors import IdentityError, ProofError
from services.identity.proofs import zkp
from services.identity.runtime import Runtime
from services.identity.service import COMMITMENTS
from services.identity.verification.challenges import (
    check_bound_to,
    consume_challenge,
    open_challenge,
)
from services.identity.verification.credentials import verify_credential
from services.identity.verification.report import REQUIRED


def verify_zk(
    *,
    rt: Runtime,
    session: Session,
    org: str,
    credential: str,
    predicate: str,
    min_age_years: int | None,
    reference_date: date | None,
    city_code: int | None,
    proof: dict[str, Any],
    nonce: str,
    include_proofs: bool,
) -> dict[str, Any]:
    """Check a predicate proof against the commitment the issuer signed, and the credential."""
    challenge = open_challenge(rt=rt, session=session, org=org, nonce=nonce)
    check_bound_to(proof, challenge, "proof")
    report = verify_credential(
        rt=rt, session=session, token=credential, include_proofs=include_proofs
    )
    subject = report.claims.get("credentialSubject") or {}
    commitments = subject.get(COMMITMENTS) if isinstance(subject, dict) else None
    key = "age" if predicate == "age_at_least" else "residency"
    commitment = commitments.get(key) if isinstance(commitments, dict) else None
    asked = reference_date or rt.now().date()
    statement: dict[str, Any] = (
        {"min_age_years": min_age_years, "reference_date": asked.isoformat()}
        if predicate == "age_at_least"
        else {"city_code": city_code}
    )
    checks = {n: report.checks[n] for n in REQUIRED}
    try:
        if commitment is None:
            raise ProofError(f"the credential carries no signed {key} commitment")
        if predicate == "age_at_least":
            if min_age_years is None:
                raise ProofError("age_at_least needs min_age_years")
            reference = zkp.proved_reference(proof, asked, min_age_years)
            if reference != asked:
                statement["proved_on"] = reference.isoformat()
            zkp.verify_age_at_least(
                proof,
                commitment=commitment,
                min_age_years=min_age_years,
                reference=reference,
                nonce=nonce,
                context=challenge.audience,
            )
        else:
            if city_code is None:
                raise ProofError("residency needs city_code")
            zkp.verify_residency(
                proof,
                commitment=commitment,
                city_code=city_code,
                nonce=nonce,
                context=challenge.audience,
            )
        checks["proof"] = {
            "status": "passed",
            "message": "the proof holds for the signed commitment and this nonce",
        }
    except (ProofError, ValueError, TypeError, KeyError) as exc:
        statement.pop("proved_on", None)  # what was asked stays; nothing was proved
        code = exc.code if isinstance(exc, IdentityError) else "invalid_proof"
        checks["proof"] = {"status": "failed", "message": f"{code}: {exc}"}
    verified = all(v["status"] == "passed" for v in checks.values())
    consume_challenge(
        rt=rt,
        session=session,
        challenge=challenge,
        digest=hashlib.sha256(canonical_json(proof)).hexdigest(),
    )
    return {
        "verified": verified,
        "predicate": predicate,
        "statement": statement,
        "checks": checks,
        "issuer": report.issuer,
        "type": report.type,
        "proofs": report.proofs,
    }
