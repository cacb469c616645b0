"""did:smartcity DIDs: created, re-keyed and deactivated on the chain, and resolved."""

from __future__ import annotations

from typing import Any

from services.identity import contract as c
from services.identity.credentials.keys import CURVES, check_public_jwk
from services.identity.errors import (
    AlreadyExists,
    DidDeactivated,
    InvalidKey,
    IssuerStillAuthorised,
    NotController,
    UnknownDid,
)
from services.identity.runtime import Runtime
from services.identity.schemas import KeyIn
from services.identity.service.common import ms_iso

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
JWK_CONTEXT = "https://w3id.org/security/jwk/v1"
DID_CURVES = frozenset({"Ed25519", "P-256"})  # what did:smartcity documents hold


def parse_did(did: str) -> str:
    """The method-specific id of a did:smartcity DID, or UnknownDid naming the problem."""
    msid = c.msid_of(did)
    if msid is None:
        raise UnknownDid(
            f"{did!r} is not a did:smartcity DID (did:smartcity:<id>)", code="invalid_did"
        )
    return msid


def did_record(*, rt: Runtime, did: str) -> dict[str, Any]:
    """The DID's on-chain record (deactivated ones included)."""
    record: dict[str, Any] | None = rt.chain.read(c.did_key(parse_did(did)))
    if record is None:
        raise UnknownDid(f"{did} is not registered on the chain")
    return record


def active_did(*, rt: Runtime, did: str) -> dict[str, Any]:
    record = did_record(rt=rt, did=did)
    if record["deactivated"]:
        raise DidDeactivated(f"{did} is deactivated")
    return record


def require_active_issuer(*, rt: Runtime, org: str, action: str) -> None:
    """Refuse an action of an organisation whose did:smartcity:<org> is deactivated."""
    record: dict[str, Any] | None = rt.chain.read(c.did_key(org))
    if record is not None and record["deactivated"]:
        raise DidDeactivated(f"{c.did_of(org)} is deactivated: it cannot {action}")


def did_document(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The W3C DID Core document and its document metadata, from the on-chain record."""
    did = record["id"]
    methods = [
        {
            "id": f"{did}#{vm['id']}",
            "type": "JsonWebKey",
            "controller": did,
            "publicKeyJwk": vm["publicKeyJwk"],
        }
        for vm in record["verificationMethod"]
    ]
    document: dict[str, Any] = {"@context": [DID_CONTEXT, JWK_CONTEXT], "id": did}
    if not record["deactivated"]:
        document["verificationMethod"] = methods
        document["authentication"] = [f"{did}#{f}" for f in record["authentication"]]
        document["assertionMethod"] = [f"{did}#{f}" for f in record["assertionMethod"]]
    metadata = {
        "created": ms_iso(record["created_ms"]),
        "updated": ms_iso(record["updated_ms"]),
        "versionId": str(record["versionId"]),
        "deactivated": record["deactivated"],
        "controllerOrg": record["controller"],
        "chain": {
            "namespace": c.NAMESPACE,
            "key": c.did_key(did.split(":", 2)[2]),
            "createdHeight": record["created_height"],
            "updatedHeight": record["updated_height"],
        },
    }
    return document, metadata


def public_key_args(key: KeyIn | dict[str, Any], *, where: str = "publicKeyJwk") -> dict[str, Any]:
    """A public JWK fully checked and reduced to the members the chain stores."""
    raw = key.publicKeyJwk if isinstance(key, KeyIn) else key
    members: dict[str, Any] = check_public_jwk(raw, where=where, curves=DID_CURVES)
    members["alg"] = CURVES[members["crv"]][2]
    return members


def _document_args(msid: str, keys: list[KeyIn]) -> dict[str, Any]:
    methods, auth, assertion = [], [], []
    for number, key in enumerate(keys, start=1):
        fragment = key.id or f"key-{number}"
        where = f"keys[{number - 1}].publicKeyJwk"
        methods.append({"id": fragment, "publicKeyJwk": public_key_args(key, where=where)})
        if "authentication" in key.purposes:
            auth.append(fragment)
        if "assertionMethod" in key.purposes:
            assertion.append(fragment)
    fragments = [m["id"] for m in methods]
    if len(set(fragments)) != len(fragments):
        raise InvalidKey("keys: each key needs a distinct id", code="duplicate_key_id")
    return {
        "msid": msid,
        "verification_methods": methods,
        "authentication": auth,
        "assertion": assertion,
    }


def create_holder_did(*, rt: Runtime, org: str, keys: list[KeyIn]) -> tuple[dict[str, Any], str]:
    """Register a holder's DID (id derived from its first key); the agency controls it."""
    require_active_issuer(rt=rt, org=org, action="register keys")
    args = _document_args("", keys)
    msid = c.derived_msid(args["verification_methods"][0]["publicKeyJwk"])
    if rt.chain.read(c.did_key(msid)) is not None:
        raise AlreadyExists(f"{c.did_of(msid)} is already registered", code="did_exists")
    receipt = rt.chain.submit(org, "create_did", {**args, "msid": msid})
    return did_record(rt=rt, did=c.did_of(msid)), str(receipt["tx"])


def update_did_keys(
    *, rt: Runtime, org: str, did: str, keys: list[KeyIn], version: int
) -> tuple[dict[str, Any], str]:
    """Rotate a DID's keys (the controlling org only); old keys stay valid for the past."""
    record = _controlled(rt, org=org, did=did)
    require_active_issuer(rt=rt, org=org, action="register keys")
    args = {**_document_args(parse_did(did), keys), "version": version}
    del record
    receipt = rt.chain.submit(org, "update_did", args)
    return did_record(rt=rt, did=did), str(receipt["tx"])


def deactivate_did(*, rt: Runtime, org: str, did: str) -> tuple[dict[str, Any], str]:
    """Deactivate a DID (final). An authorised issuer's own DID only after governance removed
    it as an issuer: until then verifiers rely on its keys for what it issues."""
    _controlled(rt, org=org, did=did)
    msid = parse_did(did)
    current = c.open_issuer_types(issuer_record(rt=rt, org=msid))
    if current:
        raise IssuerStillAuthorised(
            f"governance lists {msid} as an issuer of {', '.join(current)}: a governance"
            " proposal (identity remove_issuer) must end that before its DID is deactivated"
        )
    receipt = rt.chain.submit(org, "deactivate_did", {"msid": parse_did(did)})
    return did_record(rt=rt, did=did), str(receipt["tx"])


def _controlled(rt: Runtime, *, org: str, did: str) -> dict[str, Any]:
    record = active_did(rt=rt, did=did)
    if record["controller"] != org:
        raise NotController(f"{did} is controlled by {record['controller']}, not {org}")
    return record


def issuer_record(*, rt: Runtime, org: str) -> dict[str, Any]:
    record: dict[str, Any] | None = rt.chain.read(c.issuer_key(org))
    return record or {"org": org, "types": {}}
