"""Verification: credentials, presentations and zero-knowledge predicates, each check reported.

A credential is checked against the chain alone: the issuer's key is the verification method its
`kid` names in the issuer's on-chain DID document (valid at the anchor's height), the issuer's
authorisation for the type is governance's record, the anchor and status bits are state keys.
Each check comes with the state proof it relied on, verifiable offline with chain.light.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.identity import _vcdm, sd_jwt, vc_cose, vc_jose, zkp
from services.identity import contract as c
from services.identity._jose import Compact, parse_compact, parse_json_object, verify_parsed
from services.identity._jose import json_bytes as canonical_json
from services.identity.errors import (
    AudienceMismatch,
    ChallengeUsed,
    CredentialError,
    DisclosureError,
    IdentityError,
    KeyBindingError,
    MalformedToken,
    NonceMismatch,
    ProofError,
    ProofNonceMismatch,
    UnknownChallenge,
)
from services.identity.models import Challenge
from services.identity.runtime import Runtime
from services.identity.service import (
    COMMITMENTS,
    digest_sri,
    schema_problems,
    token_hash,
    type_record,
)
from services.identity.service import validator_for as schema_validator

CHECKS = ("signature", "issuer_authorised", "validity_period", "status", "anchor", "schema",
          "holder_binding", "disclosures")  # fmt: skip
REQUIRED = ("signature", "issuer_authorised", "validity_period", "status", "anchor", "schema")
STATUS_URL = re.compile(r"/status-lists/([a-z0-9-]+)/(\d+)/(revocation|suspension)$")
PRESENTATION_MAX_AGE_S = 600.0


@dataclass
class Report:
    """The outcome of each check, what was read, and the proofs it rests on."""

    format: str
    issuer: str | None = None
    type: str | None = None
    subject: str | None = None
    subjects: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    # The issuer JWT's registered time claims (RFC 7519 exp/nbf): not part of the VCDM document
    # the report shows, but they limit validity as much as validFrom/validUntil do
    jwt_times: dict[str, Any] = field(default_factory=dict)
    disclosed: list[str] = field(default_factory=list)
    proofs: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, ok: bool | None, message: str) -> None:
        status = "skipped" if ok is None else "passed" if ok else "failed"
        self.checks[name] = {"status": status, "message": message}

    @property
    def verified(self) -> bool:
        failed = any(v["status"] == "failed" for v in self.checks.values())
        return not failed and all(
            self.checks.get(n, {}).get("status") == "passed" for n in REQUIRED
        )

    def finish(self) -> Report:
        for name in CHECKS:
            self.checks.setdefault(name, {"status": "skipped", "message": "not reached"})
        self.checks = {n: self.checks[n] for n in CHECKS} | {
            k: v for k, v in self.checks.items() if k not in CHECKS
        }
        return self

    def as_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "format": self.format,
            "issuer": self.issuer,
            "type": self.type,
            "subject": self.subject,
            "subjects": self.subjects,
            "checks": self.checks,
            "claims": self.claims,
            "disclosed": self.disclosed,
            "proofs": self.proofs,
        }


@dataclass
class Binding:
    """What the holder binding must show: a key binding JWT for this challenge, or a VP holder."""

    nonce: str | None = None
    audience: str | None = None
    require_key_binding: bool = False
    holder: str | None = None


def verify_credential(
    env: Runtime, session: Session, *, token: str, include_proofs: bool = True,
    binding: Binding | None = None,
) -> Report:  # fmt: skip
    """Check a vc+jwt, vc+cose or (presented) vc+sd-jwt against the chain; each check reported."""
    token = token.strip()
    if vc_cose.looks_like_cose(token):
        return _verify_checks(env, session, Report(format="vc+cose"), token, None, include_proofs,
                              binding)  # fmt: skip
    report = Report(format="vc+sd-jwt" if "~" in token else "vc+jwt")
    try:
        compact = parse_compact(token.split("~", 1)[0])
    except IdentityError as exc:
        raise MalformedToken(f"the credential is not a JWS / SD-JWT: {exc}") from exc
    return _verify_checks(env, session, report, token, compact, include_proofs, binding)


def _verify_checks(
    env: Runtime, session: Session, report: Report, token: str, compact: Compact | None,
    include_proofs: bool, binding: Binding | None,
) -> Report:  # fmt: skip
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
    report.issuer = _vcdm.id_of(unverified.get("issuer"))
    proofs: dict[str, Any] = {}
    vm = _issuer_key(env, report, kid, proofs)
    if vm is not None:
        _check_signature(report, token, compact, vm["publicKeyJwk"])
    if report.checks["signature"]["status"] == "passed":
        anchor = _check_anchor(env, report, token, proofs)
        _check_key_window(report, vm, anchor)
        _check_authorisation(env, report, anchor, proofs)
        _check_validity(env, report)
        _check_status(env, report, anchor, proofs)
        _check_schema(env, session, report, proofs)
        _check_binding(env, report, token, binding or Binding())
    # Proofs are built last, from the state keys the checks read (a bundle each)
    report.proofs = {n: env.chain.proof(k) for n, k in proofs.items()} if include_proofs else {}
    return report.finish()


def _issuer_key(
    env: Runtime, report: Report, kid: Any, proofs: dict[str, Any]
) -> dict[str, Any] | None:
    issuer = report.issuer or ""
    msid = c.msid_of(issuer)
    # Verify the kid names a verification method of the issuer's did:smartcity DID
    if msid is None:
        report.set("signature", False, f"issuer {issuer!r} is not a did:smartcity DID")
        return None
    if not isinstance(kid, str) or not kid.startswith(issuer + "#"):
        report.set("signature", False, "kid must name a verification method of the issuer's DID")
        return None
    key = c.vm_key(msid, kid.split("#", 1)[1])
    vm: dict[str, Any] | None = env.chain.read(key)
    proofs["issuer_key"] = key
    if vm is None:
        report.set("signature", False, f"{kid} is not a key of {issuer} on the chain")
    return vm


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
    report.claims = {k: v for k, v in verified.document.items() if k not in _vcdm.SECURING_CLAIMS}
    signed = verified.document if parsed is None else verified.claims
    report.jwt_times = {k: signed[k] for k in ("exp", "nbf") if k in signed}
    # VCDM 2.0 allows several subjects; the first is the one reported, all are bound
    report.subjects = _vcdm.subject_ids(report.claims)
    report.subject = report.subjects[0] if report.subjects else None
    types = [t for t in _as_list(report.claims.get("type")) if t != "VerifiableCredential"]
    report.type = types[0] if types else None


def _check_anchor(
    env: Runtime, report: Report, token: str, proofs: dict[str, Any]
) -> dict[str, Any] | None:
    digest = token_hash(token)
    anchor: dict[str, Any] | None = env.chain.read(c.cred_key(digest))
    proofs["anchor"] = c.cred_key(digest)
    issuer_org = c.msid_of(report.issuer or "")
    # Verify the credential's hash is anchored, by its issuer, for the type it claims
    if anchor is None:
        report.set("anchor", False, f"credential hash {digest} is not anchored on the chain")
        return None
    if anchor["org"] != issuer_org or anchor["type"] not in _as_list(report.claims.get("type")):
        report.set("anchor", False, f"the anchor is {anchor['org']}'s {anchor['type']}")
        return None
    report.type = anchor["type"]
    report.set("anchor", True, f"anchored by {anchor['org']} at height {anchor['height']}")
    return anchor


def _check_key_window(report: Report, vm: Any, anchor: dict[str, Any] | None) -> None:
    if anchor is not None and not c.key_valid_at(vm, anchor["height"]):
        report.set(
            "signature", False,
            f"the signing key was not in the issuer's DID document at height {anchor['height']}",
        )  # fmt: skip


def _check_authorisation(
    env: Runtime, report: Report, anchor: dict[str, Any] | None, proofs: dict[str, Any]
) -> None:
    org = c.msid_of(report.issuer or "") or ""
    record = env.chain.read(c.issuer_key(org))
    proofs["issuer_authorisation"] = c.issuer_key(org)
    if anchor is None:
        report.set("issuer_authorised", False, "no anchor, so the issuance height is unknown")
    elif c.is_authorised(record, anchor["type"], anchor["height"]):
        report.set("issuer_authorised", True,
                   f"{org} was admitted by governance to issue {anchor['type']} at height"
                   f" {anchor['height']}")  # fmt: skip
    else:
        report.set("issuer_authorised", False,
                   f"{org} was not an authorised issuer of {anchor['type']} at height"
                   f" {anchor['height']}")  # fmt: skip


def _check_validity(env: Runtime, report: Report) -> None:
    try:
        _vcdm.check_time({**report.claims, **report.jwt_times}, env.clock(), leeway_s=0)
    except CredentialError as exc:
        report.set("validity_period", False, str(exc))
        return
    until = report.claims.get("validUntil")
    exp = report.jwt_times.get("exp")
    report.set("validity_period", True, f"valid from {report.claims.get('validFrom')}"
               + (f" until {until}" if until else " with no end")
               + (f", JWT exp {exp}" if exp is not None else ""))  # fmt: skip


def _check_status(
    env: Runtime, report: Report, anchor: dict[str, Any] | None, proofs: dict[str, Any]
) -> None:
    entries = _as_list(report.claims.get("credentialStatus"))
    if not entries or anchor is None:
        report.set("status", False, "no status entry tied to an anchor to check")
        return
    problems, notes = [], []
    for entry in entries:
        found = STATUS_URL.search(str(entry.get("statusListCredential", "")))
        index = entry.get("statusListIndex")
        # Verify the entry is the one anchored with the credential (no pointing elsewhere)
        if (
            found is None
            or found.group(1) != anchor["org"]
            or int(found.group(2)) != anchor["list"]
            or index != str(anchor["index"])
            or found.group(3) != entry.get("statusPurpose")
        ):
            problems.append("a credentialStatus entry is not the one anchored with the credential")
            continue
        purpose = found.group(3)
        key = c.status_key(anchor["org"], anchor["list"], purpose, anchor["index"])
        bit = env.chain.read(key)
        proofs[f"status_{purpose}"] = key
        if bit is not None and bit["value"]:
            verb = "revoked" if purpose == "revocation" else "suspended"
            reason = f" ({bit['reason']})" if bit["reason"] else ""
            problems.append(f"{verb} at height {bit['height']}{reason}")
        else:
            notes.append(f"{purpose} bit 0")
    if problems:
        report.set("status", False, "; ".join(problems))
    else:
        report.set("status", True, ", ".join(notes))


def _check_schema(env: Runtime, session: Session, report: Report, proofs: dict[str, Any]) -> None:
    name = report.type
    if name is None:
        report.set("schema", False, "the credential names no type")
        return
    on_chain: dict[str, Any] | None = env.chain.read(c.type_key(name))
    proofs["type"] = c.type_key(name)
    row = type_record(env, session, name)
    digests = [s.get("digestSRI") for s in _as_list(report.claims.get("credentialSchema"))]
    # Verify the credential names the schema whose hash the chain holds, and its claims fit it
    if on_chain is None or row is None or row.schema_hash != on_chain["schema_hash"]:
        report.set("schema", False, f"type {name} has no schema matching the chain")
        return
    if digest_sri(row.schema_hash) not in digests:
        report.set("schema", False, "credentialSchema does not carry the registered schema digest")
        return
    partial = report.format == "vc+sd-jwt"
    validator = schema_validator(env, row, partial=partial)
    problems = [
        problem
        for subject in _as_list(report.claims.get("credentialSubject"))
        for problem in schema_problems(
            validator, {k: v for k, v in subject.items() if k not in ("id", COMMITMENTS)}
        )
    ]
    if problems:
        first = problems[0]
        report.set(
            "schema", False, f"claims violate {name} at {first['where']}: {first['problem']}"
        )
    else:
        which = "disclosed claims conform" if partial else "claims conform"
        report.set("schema", True, f"{which} to {name} (schema {row.schema_hash[:12]}…)")


def _check_binding(env: Runtime, report: Report, token: str, binding: Binding) -> None:
    if report.format in ("vc+jwt", "vc+cose"):
        if binding.holder is None:
            report.set("holder_binding", None, "no presentation: nothing binds a holder")
        elif binding.holder in report.subjects:
            report.set("holder_binding", True, f"presented by its subject {binding.holder}")
        else:
            report.set("holder_binding", False, "presented by someone other than its subject")
        return
    key = _vcdm_key(report.issuer, token, env)
    if sd_jwt.parse_sd_jwt(token).key_binding_jwt is None and not binding.require_key_binding:
        report.set("holder_binding", None, "presented without a key binding JWT")
        return
    try:
        sd_jwt.verify_sd_credential(
            token, key, require_key_binding=True, nonce=binding.nonce, audience=binding.audience,
            now=env.clock(),
        )  # fmt: skip
    except (KeyBindingError, NonceMismatch, AudienceMismatch) as exc:
        report.set("holder_binding", False, f"{exc.code}: {exc}")
        return
    report.set("holder_binding", True, "key binding JWT signed by the cnf key for this challenge")


def _vcdm_key(issuer: str | None, token: str, env: Runtime) -> dict[str, Any]:
    kid = parse_compact(token.split("~", 1)[0]).header["kid"]
    msid = c.msid_of(issuer or "") or ""
    record: dict[str, Any] = env.chain.read(c.vm_key(msid, kid.split("#", 1)[1]))
    return dict(record["publicKeyJwk"])


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# -- challenges and presentations ------------------------------------------------------------------


def create_challenge(
    env: Runtime, session: Session, *, org: str, audience: str | None, ttl_s: int
) -> Challenge:
    """A fresh nonce for a verifier; the holder signs it (and the audience) in the presentation."""
    row = Challenge(nonce=secrets.token_urlsafe(24), org=org, audience=audience or c.did_of(org),
                    expires_at=env.now() + timedelta(seconds=ttl_s))  # fmt: skip
    session.add(row)
    return row


def open_challenge(env: Runtime, session: Session, *, org: str, nonce: str) -> Challenge:
    """The caller's own unexpired, unused challenge for `nonce` (read, not yet consumed)."""
    row = session.get(Challenge, nonce)
    # Verify the nonce is this verifier's, unexpired and unused
    if row is None:
        raise UnknownChallenge("the nonce was not issued by this service: ask POST /challenges")
    if row.org != org:
        raise UnknownChallenge(
            "the nonce was issued to another organisation: a verifier uses its own challenge",
            code="foreign_challenge",
        )
    if _utc(row.expires_at) < env.now():
        raise UnknownChallenge(
            "the challenge has expired: ask for a new one", code="challenge_expired"
        )
    if row.used_at is not None:
        raise ChallengeUsed("the nonce was already used: a presentation is accepted once")
    return row


def consume_challenge(env: Runtime, session: Session, *, challenge: Challenge, digest: str) -> None:
    """Mark the nonce used, once: only a verification that ran to its report consumes it.

    The conditional update is the single-use guarantee under concurrency: of two requests
    racing with one nonce, exactly one changes the row.
    """
    done = session.execute(
        update(Challenge).where(Challenge.nonce == challenge.nonce, Challenge.used_at.is_(None))
        .values(used_at=env.now(), replay_key=digest)
    )  # fmt: skip
    if getattr(done, "rowcount", 1) != 1:
        raise ChallengeUsed("the nonce was already used: a presentation is accepted once")


def check_bound_to(claims: dict[str, Any], challenge: Challenge, what: str) -> None:
    """Refuse (4xx) a presentation or proof that names another nonce or audience.

    Read before any signature is checked: it can only refuse, never accept, and it leaves the
    verifier's nonce unused for the presentation that was really made for it.
    """
    proof = what == "proof"
    if claims.get("nonce") != challenge.nonce:
        wrong_nonce: type[IdentityError] = ProofNonceMismatch if proof else NonceMismatch
        raise wrong_nonce(f"the {what} was made for another nonce (another challenge): a replay")
    audiences = _as_list(claims.get("context" if proof else "aud"))
    if challenge.audience not in audiences:
        wrong_audience: type[IdentityError] = ProofNonceMismatch if proof else AudienceMismatch
        raise wrong_audience(
            f"the {what} is not addressed to this verifier's audience {challenge.audience!r}"
        )


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


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def verify_presentation(
    env: Runtime,
    session: Session,
    *,
    org: str,
    presentation: str,
    nonce: str,
    include_proofs: bool,
) -> dict[str, Any]:
    """Verify an SD-JWT+KB or a vp+jwt for a challenge this service issued to `org`."""
    text = presentation.strip()
    challenge = open_challenge(env, session, org=org, nonce=nonce)
    check_bound_to(_presented_challenge(text), challenge, "presentation")
    checks: dict[str, dict[str, str]] = {
        "challenge": {"status": "passed", "message": "nonce issued here, unexpired, first use"}
    }
    binding = Binding(nonce=nonce, audience=challenge.audience)
    if "~" in text:
        binding.require_key_binding = True
        report = verify_credential(env, session, token=text, include_proofs=include_proofs,
                                   binding=binding)  # fmt: skip
        holder, reports = report.subject, [report]
        checks["holder_signature"] = report.checks["holder_binding"]
    else:
        holder, reports = _verify_vp_jwt(env, session, text, binding, checks, include_proofs)
    verified = (
        all(v["status"] == "passed" for v in checks.values())
        and bool(reports)
        and all(r.verified and r.checks["holder_binding"]["status"] == "passed" for r in reports)
    )
    consume_challenge(env, session, challenge=challenge,
                      digest=hashlib.sha256(text.encode()).hexdigest())  # fmt: skip
    return {"verified": verified, "nonce": nonce, "audience": challenge.audience, "holder": holder,
            "checks": checks, "credentials": [r.as_json() for r in reports]}  # fmt: skip


def _verify_vp_jwt(
    env: Runtime, session: Session, text: str, binding: Binding, checks: dict[str, dict[str, str]],
    include_proofs: bool,
) -> tuple[str | None, list[Report]]:  # fmt: skip
    try:
        header = parse_compact(text).header
    except IdentityError as exc:
        raise MalformedToken(f"the presentation is neither an SD-JWT nor a vp+jwt: {exc}") from exc
    kid = header.get("kid")
    holder = kid.split("#", 1)[0] if isinstance(kid, str) else None
    msid = c.msid_of(holder or "")
    record = (
        env.chain.read(c.vm_key(msid, str(kid).split("#", 1)[1]))
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
            text, record["publicKeyJwk"], nonce=binding.nonce, audience=binding.audience,
            now=env.clock(), max_age_s=PRESENTATION_MAX_AGE_S,
        )  # fmt: skip
    except CredentialError as exc:
        checks["holder_signature"] = {"status": "failed", "message": f"{exc.code}: {exc}"}
        return holder, []
    checks["holder_signature"] = {
        "status": "passed",
        "message": f"signed by {kid}, for this nonce and audience",
    }
    binding = Binding(holder=holder)
    reports = [
        verify_credential(env, session, token=e.token, include_proofs=include_proofs,
                          binding=binding)
        for e in verified.credentials
    ]  # fmt: skip
    return holder, reports


# -- zero-knowledge predicates ---------------------------------------------------------------------


def verify_zk(
    env: Runtime, session: Session, *, org: str, credential: str, predicate: str,
    min_age_years: int | None, reference_date: date | None, city_code: int | None,
    proof: dict[str, Any], nonce: str, include_proofs: bool,
) -> dict[str, Any]:  # fmt: skip
    """Check a predicate proof against the commitment the issuer signed, and the credential."""
    challenge = open_challenge(env, session, org=org, nonce=nonce)
    check_bound_to(proof, challenge, "proof")
    report = verify_credential(env, session, token=credential, include_proofs=include_proofs)
    subject = report.claims.get("credentialSubject") or {}
    commitments = subject.get(COMMITMENTS) if isinstance(subject, dict) else None
    key = "age" if predicate == "age_at_least" else "residency"
    commitment = commitments.get(key) if isinstance(commitments, dict) else None
    statement: dict[str, Any]
    checks = {n: report.checks[n] for n in REQUIRED}
    try:
        if commitment is None:
            raise ProofError(f"the credential carries no signed {key} commitment")
        if predicate == "age_at_least":
            reference = reference_date or env.now().date()
            statement = {"min_age_years": min_age_years, "reference_date": reference.isoformat()}
            if min_age_years is None:
                raise ProofError("age_at_least needs min_age_years")
            zkp.verify_age_at_least(
                proof, commitment=commitment, min_age_years=min_age_years, reference=reference,
                nonce=nonce, context=challenge.audience,
            )  # fmt: skip
        else:
            statement = {"city_code": city_code}
            if city_code is None:
                raise ProofError("residency needs city_code")
            zkp.verify_residency(proof, commitment=commitment, city_code=city_code, nonce=nonce,
                                 context=challenge.audience)  # fmt: skip
        checks["proof"] = {
            "status": "passed",
            "message": "the proof holds for the signed commitment and this nonce",
        }
    except (ProofError, ValueError, TypeError, KeyError) as exc:
        statement = {"min_age_years": min_age_years, "city_code": city_code}
        code = exc.code if isinstance(exc, IdentityError) else "invalid_proof"
        checks["proof"] = {"status": "failed", "message": f"{code}: {exc}"}
    verified = all(v["status"] == "passed" for v in checks.values())
    consume_challenge(env, session, challenge=challenge,
                      digest=hashlib.sha256(canonical_json(proof)).hexdigest())  # fmt: skip
    return {"verified": verified, "predicate": predicate, "statement": statement, "checks": checks,
            "issuer": report.issuer, "type": report.type,
            "proofs": report.proofs}  # fmt: skip
