"""Verify one credential (vc+jwt, vc+cose or a presented vc+sd-jwt): its own checks here, the
checks against the chain's state in `chain_checks`, the proofs attached last."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.common.ledger import run_reading
from services.identity import contract as c
from services.identity.block_cache import NoSession, NotKept, memory_only
from services.identity.credentials import sd_jwt, vc_cose, vc_jose, vcdm
from services.identity.credentials.jose import (
    Compact,
    parse_compact,
    parse_json_object,
    verify_parsed,
)
from services.identity.errors import (
    AudienceMismatch,
    CredentialError,
    DisclosureError,
    IdentityError,
    KeyBindingError,
    MalformedToken,
    NonceMismatch,
)
from services.identity.runtime import Runtime
from services.identity.verification.chain_checks import (
    check_anchor,
    check_authorisation,
    check_key_window,
    check_schema,
    check_status,
    read_issuer_key,
)
from services.identity.verification.report import Binding, Report, as_list


def verify_credential(
    *,
    rt: Runtime,
    session: Session,
    token: str,
    include_proofs: bool = True,
    binding: Binding | None = None,
) -> Report:
    """Check a vc+jwt, vc+cose or (presented) vc+sd-jwt against the chain; each check reported."""
    token = token.strip()
    if vc_cose.looks_like_cose(token):
        return _verify_checks(
            rt, session, Report(format="vc+cose"), token, None, include_proofs, binding
        )
    report = Report(format="vc+sd-jwt" if "~" in token else "vc+jwt")
    try:
        compact = parse_compact(token.split("~", 1)[0])
    except IdentityError as exc:
        raise MalformedToken(f"the credential is not a JWS / SD-JWT: {exc}") from exc
    return _verify_checks(rt, session, report, token, compact, include_proofs, binding)


async def verify_credential_async(
    *, rt: Runtime, session: Session, token: str, include_proofs: bool
) -> Report:
    """`verify_credential` for an async route. Without proofs it reads chain state and the
    cached type (the database once per type and process; never for a name the chain does not
    hold, once a second at most for one it holds and this service does not), so with the chain
    in this process it runs on the event loop; proofs read the node's block store, in the
    thread pool. On a remote node it runs on the loop when every read (and proof) is kept from
    the last block (no thread hop), else again in the thread pool, reading the node."""
    if rt.chain.cache is not None:
        try:
            with memory_only():
                return verify_credential(
                    rt=rt,
                    session=cast(Session, NoSession()),
                    token=token,
                    include_proofs=include_proofs,
                )
        except NotKept:
            pass
    if include_proofs:
        return await run_in_threadpool(
            verify_credential, rt=rt, session=session, token=token, include_proofs=True
        )
    return await run_reading(
        rt.ctx.ledger, verify_credential, rt=rt, session=session, token=token, include_proofs=False
    )


def _verify_checks(
    rt: Runtime,
    session: Session,
    report: Report,
    token: str,
    compact: Compact | None,
    include_proofs: bool,
    binding: Binding | None,
) -> Report:
    try:
        if compact is None:
            header, unverified = vc_cose.parse_unverified(token)
            kid: Any = header.get(vc_cose.KID)
            kid = kid.decode("utf-8", "replace") if isinstance(kid, bytes) else kid
        else:
            unverified = parse_json_object(compact.payload, "credential claims")
            kid = compact.header.get("kid")
    except IdentityError as exc:
        raise MalformedToken(f"the credential is not a JWS / SD-JWT / COSE_Sign1: {exc}") from exc
    report.issuer = vcdm.id_of(unverified.get("issuer"))
    proofs: dict[str, Any] = {}
    vm = read_issuer_key(rt=rt, report=report, kid=kid, proofs=proofs)
    if vm is not None:
        _check_signature(report, token, compact, vm["publicKeyJwk"])
    if report.checks["signature"]["status"] == "passed":
        anchor = check_anchor(rt=rt, report=report, token=token, proofs=proofs)
        check_key_window(report=report, vm=vm, anchor=anchor)
        check_authorisation(rt=rt, report=report, anchor=anchor, proofs=proofs)
        _check_validity(rt, report)
        check_status(rt=rt, report=report, anchor=anchor, proofs=proofs)
        check_schema(rt=rt, session=session, report=report, proofs=proofs)
        _check_binding(rt, report, token, binding or Binding())
    # Proofs are built last, from the state keys the checks read (a bundle each)
    report.proofs = {n: rt.chain.proof(k) for n, k in proofs.items()} if include_proofs else {}
    return report.finish()


def _check_signature(
    report: Report, token: str, parsed: Compact | None, key: dict[str, Any]
) -> None:
    try:
        if parsed is None:
            verified: Any = vc_cose.verify_credential(token, key)
        else:
            compact = verify_parsed(parsed, key)
    except CredentialError as exc:
        report.set("signature", False, f"{exc.code}: {exc}")
        return
    try:
        if parsed is None:
            report.set("disclosures", None, "vc+cose discloses every claim")
        elif report.format == "vc+jwt":
            verified = vc_jose.check_signed_credential(compact)
            report.set("disclosures", None, "vc+jwt discloses every claim")
        else:
            without_kb = sd_jwt.parse_sd_jwt(token).without_key_binding()
            verified = sd_jwt.verify_sd_credential(without_kb, key, verified=compact)
            report.disclosed = list(verified.disclosed)
            report.set("disclosures", True, f"{len(verified.disclosed)} disclosures match digests")
    except DisclosureError as exc:
        report.set("signature", True, "the issuer's signature verifies")
        report.set("disclosures", False, f"{exc.code}: {exc}")
        return
    except CredentialError as exc:
        report.set("signature", False, f"signature verifies but the credential is not valid: {exc}")
        return
    report.set("signature", True, "the issuer's signature verifies with its on-chain key")
    report.claims = {k: v for k, v in verified.document.items() if k not in vcdm.SECURING_CLAIMS}
    signed = verified.document if parsed is None else verified.claims
    report.jwt_times = {k: signed[k] for k in ("exp", "nbf") if k in signed}
    # VCDM 2.0 allows several subjects; the first is the one reported, all are bound
    report.subjects = vcdm.subject_ids(report.claims)
    report.subject = report.subjects[0] if report.subjects else None
    types = [t for t in as_list(report.claims.get("type")) if t != "VerifiableCredential"]
    report.type = types[0] if types else None


def _check_validity(rt: Runtime, report: Report) -> None:
    try:
        vcdm.check_time({**report.claims, **report.jwt_times}, rt.clock(), leeway_s=0)
    except CredentialError as exc:
        report.set("validity_period", False, str(exc))
        return
    until = report.claims.get("validUntil")
    exp = report.jwt_times.get("exp")
    report.set(
        "validity_period",
        True,
        f"valid from {report.claims.get('validFrom')}"
        + (f" until {until}" if until else " with no end")
        + (f", JWT exp {exp}" if exp is not None else ""),
    )


def _check_binding(rt: Runtime, report: Report, token: str, binding: Binding) -> None:
    if report.format in ("vc+jwt", "vc+cose"):
        if binding.holder is None:
            report.set("holder_binding", None, "no presentation: nothing binds a holder")
        elif binding.holder in report.subjects:
            report.set("holder_binding", True, f"presented by its subject {binding.holder}")
        else:
            report.set("holder_binding", False, "presented by someone other than its subject")
        return
    key = _vcdm_key(report.issuer, token, rt)
    if sd_jwt.parse_sd_jwt(token).key_binding_jwt is None and not binding.require_key_binding:
        report.set("holder_binding", None, "presented without a key binding JWT")
        return
    try:
        sd_jwt.verify_sd_credential(
            token,
            key,
            require_key_binding=True,
            nonce=binding.nonce,
            audience=binding.audience,
            now=rt.clock(),
        )
    except (KeyBindingError, NonceMismatch, AudienceMismatch) as exc:
        report.set("holder_binding", False, f"{exc.code}: {exc}")
        return
    report.set("holder_binding", True, "key binding JWT signed by the cnf key for this challenge")


def _vcdm_key(issuer: str | None, token: str, rt: Runtime) -> dict[str, Any]:
    kid = str(parse_compact(token.split("~", 1)[0]).header["kid"])
    msid = c.msid_of(issuer or "") or ""
    record: dict[str, Any] = rt.chain.read(c.vm_key(msid, kid.split("#", 1)[1]))
    return dict(record["publicKeyJwk"])
