"""The checks a credential passes against the chain's state, each recording the key it read.

The issuer's key (a verification method of its on-chain DID document, valid at the anchor's
height), the anchor, governance's authorisation of the issuer for the type, the status bits and
the registered schema: each check names the state key it relied on in `proofs`, and
`verify_credential` turns those keys into state proofs once all checks ran.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.runtime import Runtime
from services.identity.service import (
    COMMITMENTS,
    digest_sri,
    schema_problems,
    token_hash,
    type_record,
)
from services.identity.service import validator_for as schema_validator
from services.identity.verification.report import Report, as_list

STATUS_URL = re.compile(r"/status-lists/([a-z0-9-]+)/(\d+)/(revocation|suspension)$")


def read_issuer_key(
    *, rt: Runtime, report: Report, kid: Any, proofs: dict[str, Any]
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
    vm: dict[str, Any] | None = rt.chain.read(key)
    proofs["issuer_key"] = key
    if vm is None:
        report.set("signature", False, f"{kid} is not a key of {issuer} on the chain")
    return vm


def check_anchor(
    *, rt: Runtime, report: Report, token: str, proofs: dict[str, Any]
) -> dict[str, Any] | None:
    digest = token_hash(token)
    anchor: dict[str, Any] | None = rt.chain.read(c.cred_key(digest))
    proofs["anchor"] = c.cred_key(digest)
    issuer_org = c.msid_of(report.issuer or "")
    # Verify the credential's hash is anchored, by its issuer, for the type it claims
    if anchor is None:
        report.set("anchor", False, f"credential hash {digest} is not anchored on the chain")
        return None
    if anchor["org"] != issuer_org or anchor["type"] not in as_list(report.claims.get("type")):
        report.set("anchor", False, f"the anchor is {anchor['org']}'s {anchor['type']}")
        return None
    report.type = anchor["type"]
    report.set("anchor", True, f"anchored by {anchor['org']} at height {anchor['height']}")
    return anchor


def check_key_window(*, report: Report, vm: Any, anchor: dict[str, Any] | None) -> None:
    if anchor is not None and not c.key_valid_at(vm, anchor["height"]):
        report.set(
            "signature",
            False,
            f"the signing key was not in the issuer's DID document at height {anchor['height']}",
        )


def check_authorisation(
    *, rt: Runtime, report: Report, anchor: dict[str, Any] | None, proofs: dict[str, Any]
) -> None:
    org = c.msid_of(report.issuer or "") or ""
    record = rt.chain.read(c.issuer_key(org))
    proofs["issuer_authorisation"] = c.issuer_key(org)
    if anchor is None:
        report.set("issuer_authorised", False, "no anchor, so the issuance height is unknown")
    elif c.is_authorised(record, anchor["type"], anchor["height"]):
        report.set(
            "issuer_authorised",
            True,
            f"{org} was admitted by governance to issue {anchor['type']} at height"
            f" {anchor['height']}",
        )
    else:
        report.set(
            "issuer_authorised",
            False,
            f"{org} was not an authorised issuer of {anchor['type']} at height {anchor['height']}",
        )


def check_status(
    *, rt: Runtime, report: Report, anchor: dict[str, Any] | None, proofs: dict[str, Any]
) -> None:
    entries = as_list(report.claims.get("credentialStatus"))
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
        bit = rt.chain.read(key)
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


def check_schema(*, rt: Runtime, session: Session, report: Report, proofs: dict[str, Any]) -> None:
    name = report.type
    if name is None:
        report.set("schema", False, "the credential names no type")
        return
    on_chain: dict[str, Any] | None = rt.chain.read(c.type_key(name))
    proofs["type"] = c.type_key(name)
    # The database only for a type the chain holds: any name at all costs it no read
    row = type_record(rt=rt, session=session, name=name) if on_chain is not None else None
    digests = [s.get("digestSRI") for s in as_list(report.claims.get("credentialSchema"))]
    # Verify the credential names the schema whose hash the chain holds, and its claims fit it
    if on_chain is None or row is None or row.schema_hash != on_chain["schema_hash"]:
        report.set("schema", False, f"type {name} has no schema matching the chain")
        return
    if digest_sri(row.schema_hash) not in digests:
        report.set("schema", False, "credentialSchema does not carry the registered schema digest")
        return
    partial = report.format == "vc+sd-jwt"
    validator = schema_validator(rt=rt, row=row, partial=partial)
    problems = [
        problem
        for subject in as_list(report.claims.get("credentialSubject"))
        for problem in schema_problems(
            validator=validator,
            claims={k: v for k, v in subject.items() if k not in ("id", COMMITMENTS)},
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
