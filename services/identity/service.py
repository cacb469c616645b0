"""The identity domain: DIDs, issuer keys, credential types, issuance, revocation and suspension.

Every function is keyword-only, takes the service environment and the request's DB session, and
raises the package's errors. Chain writes come first (signed as the acting org, see chain.py), DB
rows after, in the request's one transaction: a refusal anywhere leaves nothing half-written.
Verification lives in `verification.py`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import jsonschema
from jwcrypto import jwk
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chain.encoding import canonical
from services.identity import _vcdm, sd_jwt, status_list, vc_cose, vc_jose, zkp
from services.identity import contract as c
from services.identity._jose import public_jwk
from services.identity._keys import CURVES, check_public_jwk
from services.identity.errors import (
    AlreadyExists,
    BadRequest,
    BadSchema,
    DidDeactivated,
    IdentityError,
    InvalidKey,
    IssuerStillAuthorised,
    NotAuthorisedIssuer,
    NotController,
    SchemaViolation,
    UnknownCredential,
    UnknownDid,
    UnknownType,
)
from services.identity.models import CredentialType, IssuedCredential, IssuerKey
from services.identity.runtime import Runtime, TypeRecord
from services.identity.schemas import IssueIn, KeyIn

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
JWK_CONTEXT = "https://w3id.org/security/jwk/v1"
COMMITMENTS = "zkCommitments"
LIST_FILL = c.LIST_ENTRIES // 2  # open a new list at half full: random indexes stay cheap
ALG_CURVES = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}
DID_CURVES = frozenset({"Ed25519", "P-256"})  # what did:smartcity documents hold


def schema_hash(schema: dict[str, Any]) -> str:
    """SHA-256 of the schema's RFC 8785 canonical JSON: what the chain holds for a type."""
    return hashlib.sha256(canonical(schema)).hexdigest()


def token_hash(token: str) -> str:
    """The anchored hash: SHA-256 of the issuer-signed JWT (an SD-JWT's part before `~`)."""
    return hashlib.sha256(token.strip().split("~", 1)[0].encode("ascii")).hexdigest()


def digest_sri(hex_digest: str) -> str:
    """A Subresource Integrity string (`sha256-<base64>`) for a hex SHA-256."""
    return "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- DIDs ------------------------------------------------------------------------------------------


def parse_did(did: str) -> str:
    """The method-specific id of a did:smartcity DID, or UnknownDid naming the problem."""
    msid = c.msid_of(did)
    if msid is None:
        raise UnknownDid(
            f"{did!r} is not a did:smartcity DID (did:smartcity:<id>)", code="invalid_did"
        )
    return msid


def did_record(env: Runtime, did: str) -> dict[str, Any]:
    """The DID's on-chain record (deactivated ones included)."""
    record: dict[str, Any] | None = env.chain.read(c.did_key(parse_did(did)))
    if record is None:
        raise UnknownDid(f"{did} is not registered on the chain")
    return record


def active_did(env: Runtime, did: str) -> dict[str, Any]:
    record = did_record(env, did)
    if record["deactivated"]:
        raise DidDeactivated(f"{did} is deactivated")
    return record


def require_active_issuer(env: Runtime, org: str, action: str) -> None:
    """Refuse an action of an organisation whose did:smartcity:<org> is deactivated."""
    record: dict[str, Any] | None = env.chain.read(c.did_key(org))
    if record is not None and record["deactivated"]:
        raise DidDeactivated(f"{c.did_of(org)} is deactivated: it cannot {action}")


def did_document(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The W3C DID Core document and its document metadata, from the on-chain record."""
    did = record["id"]
    methods = [
        {"id": f"{did}#{vm['id']}", "type": "JsonWebKey", "controller": did,
         "publicKeyJwk": vm["publicKeyJwk"]}
        for vm in record["verificationMethod"]
    ]  # fmt: skip
    document: dict[str, Any] = {"@context": [DID_CONTEXT, JWK_CONTEXT], "id": did}
    if not record["deactivated"]:
        document["verificationMethod"] = methods
        document["authentication"] = [f"{did}#{f}" for f in record["authentication"]]
        document["assertionMethod"] = [f"{did}#{f}" for f in record["assertionMethod"]]
    metadata = {
        "created": _ms_iso(record["created_ms"]),
        "updated": _ms_iso(record["updated_ms"]),
        "versionId": str(record["versionId"]),
        "deactivated": record["deactivated"],
        "controllerOrg": record["controller"],
        "chain": {"namespace": c.NAMESPACE, "key": c.did_key(did.split(":", 2)[2]),
                  "createdHeight": record["created_height"],
                  "updatedHeight": record["updated_height"]},
    }  # fmt: skip
    return document, metadata


def _ms_iso(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, tz=UTC))


def public_key_args(key: KeyIn | dict[str, Any], where: str = "publicKeyJwk") -> dict[str, Any]:
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
        methods.append({"id": fragment, "publicKeyJwk": public_key_args(key, where)})
        if "authentication" in key.purposes:
            auth.append(fragment)
        if "assertionMethod" in key.purposes:
            assertion.append(fragment)
    fragments = [m["id"] for m in methods]
    if len(set(fragments)) != len(fragments):
        raise InvalidKey("keys: each key needs a distinct id", code="duplicate_key_id")
    return {"msid": msid, "verification_methods": methods, "authentication": auth,
            "assertion": assertion}  # fmt: skip


def create_holder_did(env: Runtime, *, org: str, keys: list[KeyIn]) -> tuple[dict[str, Any], str]:
    """Register a holder's DID (id derived from its first key); the agency controls it."""
    require_active_issuer(env, org, "register keys")
    args = _document_args("", keys)
    msid = c.derived_msid(args["verification_methods"][0]["publicKeyJwk"])
    if env.chain.read(c.did_key(msid)) is not None:
        raise AlreadyExists(f"{c.did_of(msid)} is already registered", code="did_exists")
    receipt = env.chain.submit(org, "create_did", {**args, "msid": msid})
    return did_record(env, c.did_of(msid)), str(receipt["tx"])


def update_did_keys(
    env: Runtime, *, org: str, did: str, keys: list[KeyIn], version: int
) -> tuple[dict[str, Any], str]:
    """Rotate a DID's keys (the controlling org only); old keys stay valid for the past."""
    record = _controlled(env, org=org, did=did)
    require_active_issuer(env, org, "register keys")
    args = {**_document_args(parse_did(did), keys), "version": version}
    del record
    receipt = env.chain.submit(org, "update_did", args)
    return did_record(env, did), str(receipt["tx"])


def deactivate_did(env: Runtime, *, org: str, did: str) -> tuple[dict[str, Any], str]:
    """Deactivate a DID (final). An authorised issuer's own DID only after governance removed
    it as an issuer: until then verifiers rely on its keys for what it issues."""
    _controlled(env, org=org, did=did)
    msid = parse_did(did)
    current = c.open_issuer_types(issuer_record(env, msid))
    if current:
        raise IssuerStillAuthorised(
            f"governance lists {msid} as an issuer of {', '.join(current)}: a governance"
            " proposal (identity remove_issuer) must end that before its DID is deactivated"
        )
    receipt = env.chain.submit(org, "deactivate_did", {"msid": parse_did(did)})
    return did_record(env, did), str(receipt["tx"])


def _controlled(env: Runtime, *, org: str, did: str) -> dict[str, Any]:
    record = active_did(env, did)
    if record["controller"] != org:
        raise NotController(f"{did} is controlled by {record['controller']}, not {org}")
    return record


# -- issuer keys -----------------------------------------------------------------------------------


def setup_issuer_keys(
    env: Runtime, session: Session, *, org: str, algs: list[str]
) -> tuple[dict[str, Any], str]:
    """Generate (or rotate) the org's signing keys and publish them in did:smartcity:<org>.

    The private halves stay sealed in this service's database (custodial demo mode); the public
    halves are the DID's assertion methods on the chain, signed by the org's own chain key.
    """
    did = c.did_of(org)
    record: dict[str, Any] | None = env.chain.read(c.did_key(org))
    wanted = sorted(set(algs))
    new_keys = {
        alg: jwk.JWK.generate(kty=ALG_CURVES[alg][0], crv=ALG_CURVES[alg][1]) for alg in wanted
    }
    methods = {
        alg: (f"{alg.lower()}-{key.thumbprint()[:12]}", key) for alg, key in new_keys.items()
    }
    kept = []
    if record is not None:
        if record["deactivated"]:
            raise DidDeactivated(f"{did} is deactivated: it cannot register keys")
        kept = [
            vm for vm in record["verificationMethod"] if vm["publicKeyJwk"]["alg"] not in wanted
        ]
    vms = [
        *kept,
        *({"id": f, "publicKeyJwk": public_key_args(public_jwk(k))} for f, k in methods.values()),
    ]
    args: dict[str, Any] = {"msid": org, "verification_methods": vms, "authentication": [],
                            "assertion": [vm["id"] for vm in vms]}  # fmt: skip
    if record is None:
        receipt = env.chain.submit(org, "create_did", args)
    else:
        receipt = env.chain.submit(org, "update_did", {**args, "version": record["versionId"]})
    for old in session.scalars(select(IssuerKey).where(IssuerKey.org == org, IssuerKey.active)):
        if old.alg in wanted:
            old.active = False
    for alg, (fragment, key) in methods.items():
        kid = f"{did}#{fragment}"
        sealed = env.vault.seal(key.export_private(as_dict=True), f"issuer_key:{kid}")
        session.add(IssuerKey(
            kid=kid, org=org, alg=alg, public_jwk=public_key_args(public_jwk(key)),
            sealed_private_jwk=sealed, active=True, created_at=env.now(),
        ))  # fmt: skip
        env.signing_keys[kid] = key
    return did_record(env, did), str(receipt["tx"])


def signing_key(env: Runtime, session: Session, *, org: str, alg: str) -> tuple[str, jwk.JWK]:
    """The org's active signing key for `alg`, unsealed (and cached)."""
    row = session.scalars(
        select(IssuerKey).where(IssuerKey.org == org, IssuerKey.alg == alg, IssuerKey.active)
    ).first()
    if row is None:
        raise BadRequest(
            f"{org} has no {alg} signing key: POST /identity/issuers/me/keys first",
            code="no_signing_key",
        )
    if row.kid not in env.signing_keys:
        opened = env.vault.open(row.sealed_private_jwk, f"issuer_key:{row.kid}")
        env.signing_keys[row.kid] = jwk.JWK(**opened)
    return row.kid, env.signing_keys[row.kid]


# -- credential types ------------------------------------------------------------------------------


def register_type(
    env: Runtime, session: Session, *, org: str, name: str, schema: dict[str, Any]
) -> tuple[CredentialType, int, str]:
    """Register a credential type: its JSON Schema here, the schema's hash on the chain."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadSchema(f"not a valid JSON Schema (2020-12): {exc.message}") from exc
    if schema.get("type") != "object":
        raise BadSchema('a credential type\'s schema describes the claims object: "type": "object"')
    if session.get(CredentialType, name) is not None or env.chain.read(c.type_key(name)):
        raise AlreadyExists(f"credential type {name} is already registered", code="type_exists")
    digest = schema_hash(schema)
    receipt = env.chain.submit(org, "register_type", {"name": name, "schema_hash": digest})
    row = CredentialType(name=name, schema_json=schema, schema_hash=digest, org=org,
                         created_at=env.now())  # fmt: skip
    session.add(row)
    return row, int(receipt["height"]), str(receipt["tx"])


def get_type(env: Runtime, session: Session, *, name: str) -> tuple[CredentialType, dict[str, Any]]:
    """The type's schema (from this service) and its on-chain record, which must agree."""
    row = session.get(CredentialType, name)
    on_chain: dict[str, Any] | None = env.chain.read(c.type_key(name))
    if row is None or on_chain is None:
        raise UnknownType(f"credential type {name!r} is not registered")
    if on_chain["schema_hash"] != row.schema_hash:
        raise UnknownType(f"the schema held for {name} does not match the chain's hash")
    return row, on_chain


def type_record(env: Runtime, session: Session, name: str) -> TypeRecord | None:
    """The type's schema as this service holds it, cached: a schema never changes under a name
    (the contract refuses to register a name twice), so one read per type and process."""
    if name not in env.types:
        row = session.get(CredentialType, name)
        if row is None:
            return None
        env.types[name] = TypeRecord(row.name, row.schema_json, row.schema_hash)
    return env.types[name]


def validator_for(env: Runtime, row: CredentialType | TypeRecord, *, partial: bool) -> Any:
    """A cached validator of the type's schema; `partial` drops `required` (for disclosures)."""
    key = f"{row.name}:{row.schema_hash}:{partial}"
    if key not in env.validators:
        schema = _without_required(row.schema_json) if partial else row.schema_json
        env.validators[key] = jsonschema.Draft202012Validator(schema)
    return env.validators[key]


def _without_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


def schema_problems(validator: Any, claims: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "where": "/".join(str(p) for p in error.absolute_path) or "claims",
            "problem": error.message,
        }
        for error in sorted(validator.iter_errors(claims), key=lambda e: list(e.absolute_path))
    ]


def issuer_record(env: Runtime, org: str) -> dict[str, Any]:
    record: dict[str, Any] | None = env.chain.read(c.issuer_key(org))
    return record or {"org": org, "types": {}}


# -- issuance --------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A signed credential waiting for its anchor."""

    request: IssueIn
    id: str
    token: str
    hash: str
    list_no: int
    index: int
    openings: dict[str, dict[str, Any]] | None


def issue(
    env: Runtime, session: Session, *, org: str, items: list[IssueIn]
) -> tuple[list[tuple[Prepared, dict[str, Any]]], list[str]]:
    """Validate, sign, anchor (in batches) and record credentials; returns them with receipts."""
    height = env.chain.height()
    authorised = issuer_record(env, org)
    types: dict[str, CredentialType] = {}
    holders: dict[str, dict[str, Any]] = {}
    # Verify the issuer's own DID is active: a deactivated DID issues nothing
    require_active_issuer(env, org, "issue credentials")
    for number, item in enumerate(items):
        where = f"items[{number}]: " if len(items) > 1 else ""
        if item.type not in types:
            types[item.type] = get_type(env, session, name=item.type)[0]
        # Verify the caller may issue the type now, the holder DID is active, the claims fit
        if not c.is_authorised(authorised, item.type, height + 1):
            raise NotAuthorisedIssuer(
                f"{where}{org} is not admitted by governance as an issuer of {item.type}"
            )
        if item.subject not in holders:
            holders[item.subject] = active_did(env, item.subject)
        _check_claims(env, types[item.type], item, where)
    entries = _allocate_entries(env, session, org=org, count=len(items))
    keys = {alg: signing_key(env, session, org=org, alg=alg) for alg in {i.alg for i in items}}
    prepared = [
        _sign(
            env,
            org=org,
            item=item,
            holder=holders[item.subject],
            entry=entry,
            key=keys[item.alg],
            type_row=types[item.type],
        )
        for item, entry in zip(items, entries, strict=True)
    ]
    chunks = [
        prepared[i : i + c.MAX_ANCHORS_PER_TX]
        for i in range(0, len(prepared), c.MAX_ANCHORS_PER_TX)
    ]
    txs = [
        env.chain.sign(org, "anchor_credentials", {"items": [
            {"hash": p.hash, "type": p.request.type, "list": p.list_no, "index": p.index}
            for p in chunk
        ]})
        for chunk in chunks
    ]  # fmt: skip
    receipts = env.chain.submit_all(txs)
    issued_at = env.now()
    results = []
    for chunk, receipt in zip(chunks, receipts, strict=True):
        anchor = {"tx": receipt["tx"], "height": receipt["height"]}
        for p in chunk:
            session.add(_row(env, org=org, prepared=p, anchor=anchor, issued_at=issued_at))
            results.append((p, anchor))
    return results, [str(r["tx"]) for r in receipts]


def _check_claims(env: Runtime, row: CredentialType, item: IssueIn, where: str) -> None:
    if "id" in item.claims or COMMITMENTS in item.claims:
        raise SchemaViolation(f"{where}claims must not set id or {COMMITMENTS}: the service does")
    problems = schema_problems(validator_for(env, row, partial=False), item.claims)
    if problems:
        first = problems[0]
        raise SchemaViolation(
            f"{where}claims violate the {row.name} schema at {first['where']}: {first['problem']}",
            details=problems,
        )
    if item.valid_from and item.valid_until and item.valid_until <= item.valid_from:
        raise BadRequest(f"{where}valid_until must be after valid_from")
    unknown = set(item.disclose or []) - set(item.claims)
    if unknown:
        raise BadRequest(f"{where}disclose names claims that are not present: {sorted(unknown)}")
    if item.zk is not None:
        _zk_values(item)


def _zk_values(item: IssueIn) -> dict[str, int]:
    """The integers to commit to: birth date as days since 1970, city code as is."""
    values: dict[str, int] = {}
    if item.zk is None:
        return values
    if item.zk.age is not None:
        raw = item.claims.get(item.zk.age)
        try:
            values["age"] = zkp.days_since_epoch(date.fromisoformat(str(raw)))
        except ValueError as exc:
            raise BadRequest(
                f"zk.age names {item.zk.age!r}, which is not a YYYY-MM-DD date"
            ) from exc
    if item.zk.residency is not None:
        raw = item.claims.get(item.zk.residency)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            raise BadRequest(f"zk.residency names {item.zk.residency!r}, not a city code integer")
        values["residency"] = raw
    return values


def _allocate_entries(
    env: Runtime, session: Session, *, org: str, count: int
) -> list[tuple[int, int]]:
    """Random free status list entries (herd privacy), free both here and on the chain."""
    issued = session.scalar(select(func.count()).where(IssuedCredential.org == org)) or 0
    list_no = issued // LIST_FILL
    chosen: set[int] = set()
    while len(chosen) < count:
        candidates = {
            secrets.randbelow(c.LIST_ENTRIES) for _ in range(2 * (count - len(chosen)) + 4)
        }
        candidates -= chosen
        taken = set(session.scalars(select(IssuedCredential.list_index).where(
            IssuedCredential.org == org, IssuedCredential.list_no == list_no,
            IssuedCredential.list_index.in_(candidates))))  # fmt: skip
        for index in sorted(candidates - taken):
            if len(chosen) < count and env.chain.read(c.entry_key(org, list_no, index)) is None:
                chosen.add(index)
    return [(list_no, index) for index in chosen]


def status_list_url(env: Runtime, org: str, list_no: int, purpose: str) -> str:
    return f"{env.base_url}/status-lists/{org}/{list_no}/{purpose}"


def _sign(
    env: Runtime, *, org: str, item: IssueIn, holder: dict[str, Any], entry: tuple[int, int],
    key: tuple[str, jwk.JWK], type_row: CredentialType,
) -> Prepared:  # fmt: skip
    list_no, index = entry
    kid, signer = key
    subject: dict[str, Any] = {"id": item.subject, **item.claims}
    openings = None
    if item.zk is not None:
        commitments, openings = {}, {}
        for predicate, value in _zk_values(item).items():
            commitment, opening = zkp.commit(value)
            commitments[predicate] = commitment
            openings[predicate] = {"value": opening.value, "blinding": hex(opening.blinding)}
        subject[COMMITMENTS] = commitments
    credential_id = f"urn:uuid:{uuid.uuid4()}"
    document: dict[str, Any] = {
        "@context": [_vcdm.VC_CONTEXT_V2],
        "id": credential_id,
        "type": ["VerifiableCredential", item.type],
        "issuer": c.did_of(org),
        "validFrom": iso(item.valid_from or env.now()),
        "credentialSchema": {"id": f"{env.base_url}/schemas/{item.type}", "type": "JsonSchema",
                             "digestSRI": digest_sri(type_row.schema_hash)},
        "credentialStatus": [
            status_list.status_entry(list_credential=status_list_url(env, org, list_no, p),
                                     index=index, purpose=p)
            for p in c.PURPOSES
        ],
        "credentialSubject": subject,
    }  # fmt: skip
    if item.valid_until is not None:
        document["validUntil"] = iso(item.valid_until)
    issued_at = int(env.clock())
    if item.format == "vc+jwt":
        token = vc_jose.issue_credential(document, signer, kid=kid, issued_at=issued_at)
    elif item.format == "vc+cose":
        token = vc_cose.issue_credential(document, signer, kid=kid)
    else:
        holder_key = _holder_key(holder) if item.holder_binding else None
        paths = item.disclose if item.disclose is not None else sorted(item.claims)
        token = sd_jwt.issue_sd_credential(
            document, signer, disclose=[f"credentialSubject.{p}" for p in paths], kid=kid,
            holder_key=holder_key, issued_at=issued_at,
        )  # fmt: skip
    return Prepared(item, credential_id, token, token_hash(token), list_no, index, openings)


def _holder_key(holder: dict[str, Any]) -> dict[str, Any]:
    """The holder DID's first authentication key, for the credential's `cnf`."""
    by_id = {vm["id"]: vm["publicKeyJwk"] for vm in holder["verificationMethod"]}
    for fragment in holder["authentication"]:
        return dict(by_id[fragment])
    raise BadRequest(f"{holder['id']} has no authentication key to bind the credential to")


def _row(
    env: Runtime,
    *,
    org: str,
    prepared: Prepared,
    anchor: dict[str, Any],
    issued_at: datetime,
) -> IssuedCredential:
    item = prepared.request
    return IssuedCredential(
        id=prepared.id, org=org, type=item.type, subject_did=item.subject, format=item.format,
        hash=prepared.hash, list_no=prepared.list_no, list_index=prepared.index,
        revoked=False, suspended=False,
        sealed_claims=env.vault.seal(item.claims, f"credential_claims:{prepared.id}"),
        issued_at=issued_at, anchor_tx=anchor["tx"], anchor_height=anchor["height"],
    )  # fmt: skip


def status_entries(prepared: Prepared) -> list[dict[str, Any]]:
    return [{"purpose": p, "list": prepared.list_no, "index": prepared.index, "value": 0}
            for p in c.PURPOSES]  # fmt: skip


# -- status ----------------------------------------------------------------------------------------


def own_credential(
    env: Runtime, session: Session, *, org: str, credential_id: str
) -> IssuedCredential:
    row = session.get(IssuedCredential, credential_id)
    if row is None:
        raise UnknownCredential(f"no credential {credential_id} was issued here")
    if row.org != org:
        raise NotController(f"credential {credential_id} was issued by another organisation")
    return row


def credential_claims(env: Runtime, row: IssuedCredential) -> dict[str, Any]:
    claims: dict[str, Any] = env.vault.open(row.sealed_claims, f"credential_claims:{row.id}")
    return claims


def change_status(
    env: Runtime, session: Session, *, org: str, credential_id: str, purpose: str, value: int,
    reason: str,
) -> tuple[IssuedCredential, dict[str, Any]]:  # fmt: skip
    """Revoke (final), suspend or reinstate a credential: one auditable chain transaction."""
    row = own_credential(env, session, org=org, credential_id=credential_id)
    require_active_issuer(env, org, "change a credential's status")
    # Verify the change makes sense before asking the chain
    if row.revoked:
        raise AlreadyExists(
            f"credential {credential_id} is revoked; that is final", code="already_revoked"
        )
    if purpose == "suspension" and row.suspended == bool(value):
        state = "suspended" if value else "not suspended"
        raise AlreadyExists(f"credential {credential_id} is already {state}", code="unchanged")
    receipt = env.chain.submit(org, "set_status", {
        "list": row.list_no, "index": row.list_index, "purpose": purpose, "value": value,
        "reason": reason,
    })  # fmt: skip
    if purpose == "revocation":
        row.revoked = True
    else:
        row.suspended = bool(value)
    return row, receipt


def status_list_document(
    env: Runtime, session: Session, *, org: str, list_no: int, purpose: str
) -> tuple[dict[str, Any], str | None]:
    """The W3C BitstringStatusListCredential for a list, rebuilt from the chain's status keys.

    Signed (vc+jwt) with the org's EdDSA key when this service holds one.
    """
    bits = status_list.StatusList()
    indexes = session.scalars(select(IssuedCredential.list_index).where(
        IssuedCredential.org == org, IssuedCredential.list_no == list_no))  # fmt: skip
    for index in indexes:
        entry = env.chain.read(c.status_key(org, list_no, purpose, index))
        if entry is not None and entry["value"]:
            bits.set(index)
    document = status_list.status_list_credential(
        list_id=status_list_url(env, org, list_no, purpose), issuer=c.did_of(org),
        purpose=purpose, status_list=bits, valid_from=iso(env.now()),
    )  # fmt: skip
    try:
        kid, key = signing_key(env, session, org=org, alg="EdDSA")
    except IdentityError:
        return document, None
    return document, vc_jose.issue_credential(document, key, kid=kid, issued_at=int(env.clock()))


# -- listing ---------------------------------------------------------------------------------------

CREDENTIAL_STATUSES = ("issued", "suspended", "revoked")
_CHANGE_PURPOSE = {"revoked": "revocation", "suspended": "suspension"}


@dataclass(frozen=True)
class ListedCredential:
    """A credential's metadata for a listing: no claims, and the subject only for its issuer."""

    row: IssuedCredential
    status: str
    status_height: int | None
    show_subject: bool


def credential_status(row: IssuedCredential) -> str:
    """One word for a credential's state; revocation is final, so it wins over suspension."""
    return "revoked" if row.revoked else "suspended" if row.suspended else "issued"


def list_credentials(
    env: Runtime, session: Session, *, org: str, roles: frozenset[str], issuer: str | None,
    status: str | None, type_name: str | None, limit: int, cursor: str | None,
) -> tuple[list[ListedCredential], str | None]:  # fmt: skip
    """Credentials newest first (anchor height, then id), one page after `cursor`.

    An agency lists what it issued; a regulator may list every issuer's, without subjects
    (an auditor needs issuance and revocation, not whom each credential is about).
    """
    regulator = "regulator" in roles
    # Verify the caller may see the issuer it asks for
    if issuer is None and not regulator:
        issuer = org
    if issuer is not None and issuer != org and not regulator:
        raise NotController(f"an agency lists only the credentials it issued, not {issuer}'s")
    if type_name is not None and session.get(CredentialType, type_name) is None:
        raise UnknownType(f"credential type {type_name!r} is not registered")
    query = select(IssuedCredential)
    if issuer is not None:
        query = query.where(IssuedCredential.org == issuer)
    if type_name is not None:
        query = query.where(IssuedCredential.type == type_name)
    query = _status_filter(query, status)
    if cursor is not None:
        height, last_id = _parse_cursor(cursor)
        query = query.where(
            (IssuedCredential.anchor_height < height)
            | ((IssuedCredential.anchor_height == height) & (IssuedCredential.id > last_id))
        )
    query = query.order_by(IssuedCredential.anchor_height.desc(), IssuedCredential.id.asc())
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    listed = [
        ListedCredential(
            row, credential_status(row), _status_height(env, row), show_subject=row.org == org
        )
        for row in rows
    ]
    return listed, _cursor_of(rows[-1]) if more else None


def _status_filter(query: Any, status: str | None) -> Any:
    if status is None:
        return query
    if status not in CREDENTIAL_STATUSES:
        raise BadRequest(
            f"status must be one of {', '.join(CREDENTIAL_STATUSES)}, not {status!r}",
            code="bad_status",
        )
    if status == "revoked":
        return query.where(IssuedCredential.revoked.is_(True))
    query = query.where(IssuedCredential.revoked.is_(False))
    return query.where(IssuedCredential.suspended.is_(status == "suspended"))


def _status_height(env: Runtime, row: IssuedCredential) -> int | None:
    """The block height of the change that revoked or suspended the credential (the chain's)."""
    purpose = _CHANGE_PURPOSE.get(credential_status(row))
    if purpose is None:
        return None
    entry = env.chain.read(c.status_key(row.org, row.list_no, purpose, row.list_index))
    return None if entry is None else int(entry["height"])


def _cursor_of(row: IssuedCredential) -> str:
    raw = f"{row.anchor_height}:{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[int, str]:
    """The (anchor height, id) a cursor from a previous page names, or BadRequest."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        height, _, last_id = raw.partition(":")
        if not last_id or not height.isdigit() or len(height) > 18:
            raise ValueError(raw)
        return int(height), last_id
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadRequest(
            "cursor is not one this service returned (use next_cursor as is)", code="bad_cursor"
        ) from exc
