"""Verify a presentation for a challenge: an SD-JWT+KB, or a vp+jwt carrying credentials."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.credentials import sd_jwt, vc_jose
from services.identity.credentials.jose import parse_compact, parse_json_object
from services.identity.errors import (
    CredentialError,
    DisclosureError,
    IdentityError,
    KeyBindingError,
    MalformedToken,
)
from services.identity.runtime import Runtime
from services.identity.verification.challenges import (
    check_bound_to,
    consume_challenge,
    open_challenge,
)
from services.identity.verification.credentials import verify_credential
from services.identity.verification.report import Binding, Report

PRESENTATION_MAX_AGE_S = 600.0


def _presented_challenge(text: str) -> dict[str, Any]:
    """The nonce/audience claims a presentation carries: its KB-JWT's, or the vp+jwt's own."""
    try:
        if "~" in text:
            kb_jwt = sd_jwt.parse_sd_jwt(text).key_binding_jwt
            if kb_jwt is None:
                raise KeyBindingError(
                    "a presentation needs a key binding JWT signing the verifier's nonce"
                )
            return parse_json_object(parse_compact(kb_jwt).payload, "KB-JWT")
        return parse_json_object(parse_compact(text).payload, "presentation")
    except (MalformedToken, DisclosureError) as exc:
        what = "the presentation is neither an SD-JWT+KB nor a vp+jwt"
        raise MalformedToken(f"{what}: {exc}") from exc


def verify_presentation(
    *,
    rt: Runtime,
    session: Session,
    org: str,
    presentation: str,
    nonce: str,
    include_proofs: bool,
) -> dict[str, Any]:
    """Verify an SD-JWT+KB or a vp+jwt for a challenge this service issued to `org`."""
    text = presentation.strip()
    challenge = open_challenge(rt=rt, session=session, org=org, nonce=nonce)
    check_bound_to(_presented_challenge(text), challenge, "presentation")
    checks: dict[str, dict[str, str]] = {
        "challenge": {"status": "passed", "message": "nonce issued here, unexpired, first use"}
    }
    binding = Binding(nonce=nonce, audience=challenge.audience)
    if "~" in text:
        binding.require_key_binding = True
        report = verify_credential(
            rt=rt, session=session, token=text, include_proofs=include_proofs, binding=binding
        )
        holder, reports = report.subject, [report]
        checks["holder_signature"] = report.checks["holder_binding"]
    else:
        holder, reports = _verify_vp_jwt(rt, session, text, binding, checks, include_proofs)
    verified = (
        all(v["status"] == "passed" for v in checks.values())
        and bool(reports)
        and all(r.verified and r.checks["holder_binding"]["status"] == "passed" for r in reports)
    )
    consume_challenge(
        rt=rt,
        session=session,
        challenge=challenge,
        digest=hashlib.sha256(text.encode()).hexdigest(),
    )
    return {
        "verified": verified,
        "nonce": nonce,
        "audience": challenge.audience,
        "holder": holder,
        "checks": checks,
        "credentials": [r.as_json() for r in reports],
    }


def _verify_vp_jwt(
    rt: Runtime,
    session: Session,
    text: str,
    binding: Binding,
    checks: dict[str, dict[str, str]],
    include_proofs: bool,
) -> tuple[str | None, list[Report]]:
    try:
        header = parse_compact(text).header
    except IdentityError as exc:
        raise MalformedToken(f"the presentation is neither an SD-JWT nor a vp+jwt: {exc}") from exc
    kid = header.get("kid")
    holder = kid.split("#", 1)[0] if isinstance(kid, str) else None
    msid = c.msid_of(holder or "")
    record = (
        rt.chain.read(c.vm_key(msid, str(kid).split("#", 1)[1]))
        if msid and "#" in str(kid)
        else None
    )
    if record is None or record["removed"] is not None:
        checks["holder_signature"] = {
            "status": "failed",
            "message": "kid is not a current key of a did:smartcity DID",
        }
        return holder, []
    try:
        verified = vc_jose.verify_presentation(
            text,
            record["publicKeyJwk"],
            nonce=binding.nonce,
            audience=binding.audience,
            now=rt.clock(),
            max_age_s=PRESENTATION_MAX_AGE_S,
        )
    except CredentialError as exc:
        checks["holder_signature"] = {"status": "failed", "message": f"{exc.code}: {exc}"}
        return holder, []
    checks["holder_signature"] = {
        "status": "passed",
        "message": f"signed by {kid}, for this nonce and audience",
    }
    binding = Binding(holder=holder)
    reports = [
        verify_credential(
            rt=rt, session=session, token=e.token, include_proofs=include_proofs, binding=binding
        )
        for e in verified.credentials
    ]
    return holder, reports
