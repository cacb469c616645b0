"""The identity contract: the `did:smartcity` method, credential types, issuers, anchors, status.

State (namespace `identity`); nothing personal, only identifiers, public keys, hashes and bits:

    did:<msid>                         a DID's current document (public JWKs) and its metadata
    vm:<msid>#<fragment>               one verification method with the heights it was valid in
    type:<Name>                        a credential type: the SHA-256 of its JSON Schema
    issuer:<org>                       the types governance authorised the org for, as periods
    cred:<sha256>                      an anchored credential: issuer, type, height, status entry
    entry:<org>:<list>:<index>         which credential owns a status list entry
    status:<org>:<list>:<purpose>:<i>  a set (or cleared) status bit and the change's reason

Status lists are kept as one key per changed entry rather than the encoded bitstring: a change
costs one small write, an unset entry is proven by a non-membership proof, and a set entry's
proof carries the height and reason of the change; the service rebuilds the W3C encodedList from
these keys. Every write is signed by the acting organisation itself (no relaying), and admitting
or removing an issuer is a governance `invoke`, so a verifier checks issuer authorisation, the
issuer's key at issuance time, the anchor and the status from state proofs alone.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import Field, model_validator

from chain.contracts import membership
from chain.contracts.framework import Args, Context, Contract, method
from chain.encoding import canonical
from chain.errors import ContractError
from chain.state import StateView

NAMESPACE = "identity"
DID_PREFIX = "did:smartcity:"
MSID = r"^[a-z0-9][a-z0-9-]{1,62}$"
FRAGMENT = r"^[A-Za-z0-9_-]{1,32}$"
TYPE_NAME = r"^[A-Z][A-Za-z0-9]{2,63}$"
HASH = r"^[0-9a-f]{64}$"
B64URL_32 = r"^[A-Za-z0-9_-]{43}$"
LIST_ENTRIES = 131_072
MAX_LISTS = 100_000
MAX_ANCHORS_PER_TX = 256
MAX_VMS = 8
PURPOSES = ("revocation", "suspension")
GOVERNANCE = "governance"
AGENCY_ROLE = "agency"


# -- keys of state -------------------------------------------------------------------------------


def did_key(msid: str) -> str:
    return f"did:{msid}"


def vm_key(msid: str, fragment: str) -> str:
    return f"vm:{msid}#{fragment}"


def type_key(name: str) -> str:
    return f"type:{name}"


def issuer_key(org: str) -> str:
    return f"issuer:{org}"


def cred_key(digest: str) -> str:
    return f"cred:{digest}"


def entry_key(org: str, list_no: int, index: int) -> str:
    return f"entry:{org}:{list_no}:{index}"


def status_key(org: str, list_no: int, purpose: str, index: int) -> str:
    return f"status:{org}:{list_no}:{purpose}:{index}"


def did_of(msid: str) -> str:
    return DID_PREFIX + msid


def msid_of(did: str) -> str | None:
    """The method-specific id of a `did:smartcity` DID, or None if it is not one."""
    if not did.startswith(DID_PREFIX):
        return None
    msid = did[len(DID_PREFIX) :]
    return msid if re.match(MSID, msid) else None


def derived_msid(jwk: dict[str, Any]) -> str:
    """A holder DID's id: derived from its first key, so it can never carry a name."""
    return hashlib.sha256(canonical(jwk)).hexdigest()[:32]


def is_authorised(record: dict[str, Any] | None, type_name: str, height: int) -> bool:
    """Was the issuer record's org authorised for `type_name` at `height`?"""
    if record is None:
        return False
    for since, until in record.get("types", {}).get(type_name, []):
        if since <= height and (until is None or height < until):
            return True
    return False


def open_issuer_types(record: dict[str, Any] | None) -> list[str]:
    """The types an issuer record authorises now (an open period), sorted."""
    if record is None:
        return []
    return sorted(
        t for t, periods in record.get("types", {}).items() if periods and periods[-1][1] is None
    )


def key_valid_at(record: dict[str, Any] | None, height: int) -> bool:
    """Was a verification method part of its DID document at `height`?"""
    if record is None:
        return False
    removed = record.get("removed")
    return bool(record["added"] <= height and (removed is None or height < removed))


# -- arguments -----------------------------------------------------------------------------------


class PublicJwk(Args):
    kty: Literal["OKP", "EC"]
    crv: Literal["Ed25519", "P-256"]
    x: str = Field(pattern=B64URL_32)
    y: str | None = Field(default=None, pattern=B64URL_32)
    alg: Literal["EdDSA", "ES256"] | None = None

    @model_validator(mode="after")
    def consistent(self) -> PublicJwk:
        okp = self.kty == "OKP"
        if okp != (self.crv == "Ed25519") or okp != (self.y is None):
            raise ValueError("Ed25519 keys are OKP without y; P-256 keys are EC with x and y")
        if self.alg is not None and self.alg != ("EdDSA" if okp else "ES256"):
            raise ValueError("alg does not fit the curve")
        return self

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class VerificationMethod(Args):
    id: str = Field(pattern=FRAGMENT)
    publicKeyJwk: PublicJwk


class DocumentArgs(Args):
    msid: str = Field(pattern=MSID)
    verification_methods: list[VerificationMethod] = Field(min_length=1, max_length=MAX_VMS)
    authentication: list[str] = Field(default_factory=list, max_length=MAX_VMS)
    assertion: list[str] = Field(default_factory=list, max_length=MAX_VMS)

    @model_validator(mode="after")
    def references(self) -> DocumentArgs:
        ids = [vm.id for vm in self.verification_methods]
        if len(set(ids)) != len(ids):
            raise ValueError("verification method ids must be distinct")
        if not set(self.authentication) | set(self.assertion) <= set(ids):
            raise ValueError("authentication/assertion must name verification methods")
        return self


class UpdateArgs(DocumentArgs):
    version: int = Field(ge=1)  # the version being replaced: refuses lost updates


class DidRef(Args):
    msid: str = Field(pattern=MSID)


class TypeArgs(Args):
    name: str = Field(pattern=TYPE_NAME)
    schema_hash: str = Field(pattern=HASH)


class IssuerArgs(Args):
    org: str = Field(pattern=membership.ORG_ID)
    types: list[str] = Field(min_length=1, max_length=32)


class AnchorItem(Args):
    hash: str = Field(pattern=HASH)
    type: str = Field(pattern=TYPE_NAME)
    list: int = Field(ge=0, lt=MAX_LISTS)
    index: int = Field(ge=0, lt=LIST_ENTRIES)


class AnchorArgs(Args):
    items: list[AnchorItem] = Field(min_length=1, max_length=MAX_ANCHORS_PER_TX)


class StatusArgs(Args):
    list: int = Field(ge=0, lt=MAX_LISTS)
    index: int = Field(ge=0, lt=LIST_ENTRIES)
    purpose: Literal["revocation", "suspension"]
    value: Literal[0, 1]
    reason: str = Field(default="", max_length=64, pattern=r"^[a-z0-9_]*$")


# -- the contract --------------------------------------------------------------------------------


class IdentityContract(Contract):
    """DIDs, credential types, governance-admitted issuers, credential anchors, status bits."""

    name = NAMESPACE

    @method(DocumentArgs)
    def create_did(self, ctx: Context, state: StateView, args: DocumentArgs) -> None:
        # Verify the id is the sender's own org id, or (for agencies) derived from the first key
        first = args.verification_methods[0].publicKeyJwk.as_json()
        self._require_active_did(state, ctx.sender_org, "register keys")
        if args.msid != ctx.sender_org:
            ctx.require_role(AGENCY_ROLE)
            if args.msid != derived_msid(first):
                raise ContractError(
                    "bad_did", "a holder DID's id must be derived from its first key"
                )
        if state.get(did_key(args.msid)) is not None:
            raise ContractError("did_exists", f"{did_of(args.msid)} already exists")
        if args.msid != ctx.sender_org and membership.get_org(state, args.msid) is not None:
            raise ContractError("forbidden", f"{did_of(args.msid)} is reserved for its org")
        self._write_document(ctx, state, args, version=1, created=None)
        ctx.emit("did_created", did=did_of(args.msid), controller=ctx.sender_org)

    @method(UpdateArgs)
    def update_did(self, ctx: Context, state: StateView, args: UpdateArgs) -> None:
        record = self._controlled(ctx, state, args.msid)
        self._require_active_did(state, ctx.sender_org, "register keys")
        # Verify the update replaces the current version (no lost update)
        if args.version != record["versionId"]:
            raise ContractError(
                "version_conflict", f"the document is at version {record['versionId']}"
            )
        for vm in args.verification_methods:
            known = state.get(vm_key(args.msid, vm.id))
            if known is not None and known["publicKeyJwk"] != vm.publicKeyJwk.as_json():
                raise ContractError("key_id_reused", f"key id {vm.id} named another key before")
            if known is not None and known["removed"] is not None:
                raise ContractError("key_id_reused", f"key {vm.id} was removed; use a new id")
        kept = {vm.id for vm in args.verification_methods}
        for old in record["verificationMethod"]:
            if old["id"] not in kept:
                self._retire_key(ctx, state, args.msid, old["id"])
        self._write_document(ctx, state, args, version=args.version + 1, created=record)
        ctx.emit("did_updated", did=did_of(args.msid), version=args.version + 1)

    @method(DidRef)
    def deactivate_did(self, ctx: Context, state: StateView, args: DidRef) -> None:
        # The controller deactivates its DID; so may governance (an `invoke` proposal), e.g. for
        # an organisation whose keys are compromised or that has left the network
        by_governance = ctx.sender_org == GOVERNANCE
        record = self._controlled(ctx, state, args.msid, governance_may=by_governance)
        # Verify governance no longer lists the DID's org as an issuer: an authorised issuer's
        # DID is deactivated only after governance removed it (remove_issuer) for every type
        current = open_issuer_types(state.get(issuer_key(args.msid)))
        if current:
            raise ContractError(
                "issuer_active",
                f"governance lists {args.msid} as an issuer of {', '.join(current)}: remove it"
                " by governance (remove_issuer) before deactivating its DID",
            )
        for old in record["verificationMethod"]:
            self._retire_key(ctx, state, args.msid, old["id"])
        state.put(
            did_key(args.msid),
            {
                **record,
                "deactivated": True,
                "updated_ms": ctx.time_ms,
                "updated_height": ctx.height,
                "versionId": record["versionId"] + 1,
            },
        )
        ctx.emit("did_deactivated", did=did_of(args.msid))

    @method(TypeArgs)
    def register_type(self, ctx: Context, state: StateView, args: TypeArgs) -> None:
        ctx.require_role(AGENCY_ROLE)
        # Verify the type is new: a schema never changes under a name (register a new name)
        if state.get(type_key(args.name)) is not None:
            raise ContractError("type_exists", f"credential type {args.name} is registered")
        state.put(
            type_key(args.name),
            {
                "name": args.name,
                "schema_hash": args.schema_hash,
                "org": ctx.sender_org,
                "height": ctx.height,
            },
        )
        ctx.emit("type_registered", type=args.name, schema_hash=args.schema_hash)

    @method(IssuerArgs)
    def admit_issuer(self, ctx: Context, state: StateView, args: IssuerArgs) -> None:
        self._require_governance(ctx)
        org = membership.get_org(state, args.org)
        # Verify the organisation is active, its DID is not deactivated, every type registered
        if org is None or org["status"] != "active":
            raise ContractError("unknown_org", f"no active organisation {args.org}")
        self._require_active_did(state, args.org, "be admitted as an issuer")
        record = state.get(issuer_key(args.org)) or {"org": args.org, "types": {}}
        types = dict(record["types"])
        for name in args.types:
            if state.get(type_key(name)) is None:
                raise ContractError("unknown_type", f"credential type {name} is not registered")
            periods = list(types.get(name, []))
            if periods and periods[-1][1] is None:
                raise ContractError("already_issuer", f"{args.org} already issues {name}")
            types[name] = [*periods, [ctx.height, None]]
        state.put(issuer_key(args.org), {"org": args.org, "types": types})
        ctx.emit("issuer_admitted", org=args.org, types=args.types)

    @method(IssuerArgs)
    def remove_issuer(self, ctx: Context, state: StateView, args: IssuerArgs) -> None:
        self._require_governance(ctx)
        record = state.get(issuer_key(args.org))
        types = dict(record["types"]) if record else {}
        for name in args.types:
            periods = list(types.get(name, []))
            # Verify the org currently issues the type
            if not periods or periods[-1][1] is not None:
                raise ContractError("not_issuer", f"{args.org} does not issue {name}")
            types[name] = [*periods[:-1], [periods[-1][0], ctx.height]]
        state.put(issuer_key(args.org), {"org": args.org, "types": types})
        ctx.emit("issuer_removed", org=args.org, types=args.types)

    @method(AnchorArgs)
    def anchor_credentials(self, ctx: Context, state: StateView, args: AnchorArgs) -> None:
        org = ctx.sender_org
        issuer = state.get(issuer_key(org))
        self._require_active_did(state, org, "issue credentials")
        for item in args.items:
            # Verify the sender may issue the type, the hash is new and the entry is free
            if not is_authorised(issuer, item.type, ctx.height):
                raise ContractError(
                    "not_issuer", f"{org} is not an authorised issuer of {item.type}"
                )
            if state.get(cred_key(item.hash)) is not None:
                raise ContractError("already_anchored", f"credential {item.hash} is anchored")
            if state.get(entry_key(org, item.list, item.index)) is not None:
                raise ContractError(
                    "status_entry_taken", f"status entry {item.list}/{item.index} is in use"
                )
            state.put(
                cred_key(item.hash),
                {
                    "org": org,
                    "type": item.type,
                    "height": ctx.height,
                    "time_ms": ctx.time_ms,
                    "list": item.list,
                    "index": item.index,
                },
            )
            state.put(entry_key(org, item.list, item.index), item.hash)
        ctx.emit("credentials_anchored", org=org, count=len(args.items))

    @method(StatusArgs)
    def set_status(self, ctx: Context, state: StateView, args: StatusArgs) -> None:
        org = ctx.sender_org
        self._require_active_did(state, org, "change a credential's status")
        # Verify the entry belongs to a credential this org anchored, and revocation is final
        digest = state.get(entry_key(org, args.list, args.index))
        if digest is None:
            raise ContractError(
                "unknown_entry", f"{org} has no credential at {args.list}/{args.index}"
            )
        key = status_key(org, args.list, args.purpose, args.index)
        current = state.get(key)
        if args.purpose == "revocation" and current is not None and current["value"] == 1:
            raise ContractError("already_revoked", "a revoked credential stays revoked")
        if (current["value"] if current else 0) == args.value:
            raise ContractError("unchanged", f"the {args.purpose} bit is already {args.value}")
        state.put(key, {"value": args.value, "height": ctx.height, "reason": args.reason})
        ctx.emit(
            "status_changed",
            org=org,
            list=args.list,
            index=args.index,
            purpose=args.purpose,
            value=args.value,
            credential=digest,
        )

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _require_governance(ctx: Context) -> None:
        if ctx.sender_org != GOVERNANCE:
            raise ContractError("forbidden", "only an approved governance proposal may do this")

    @staticmethod
    def _require_active_did(state: StateView, org: str, action: str) -> None:
        record = state.get(did_key(org))
        if record is not None and record["deactivated"]:
            raise ContractError(
                "did_deactivated", f"{did_of(org)} is deactivated: it cannot {action}"
            )

    @staticmethod
    def _controlled(
        ctx: Context, state: StateView, msid: str, *, governance_may: bool = False
    ) -> dict[str, Any]:
        record: dict[str, Any] | None = state.get(did_key(msid))
        # Verify the DID exists, is active and the sender's org controls it
        if record is None:
            raise ContractError("unknown_did", f"no DID {did_of(msid)}")
        if record["deactivated"]:
            raise ContractError("did_deactivated", f"{did_of(msid)} is deactivated")
        if record["controller"] != ctx.sender_org and not governance_may:
            raise ContractError("forbidden", f"{did_of(msid)} is controlled by another org")
        return record

    @staticmethod
    def _retire_key(ctx: Context, state: StateView, msid: str, fragment: str) -> None:
        record = state.get(vm_key(msid, fragment))
        if record is not None and record["removed"] is None:
            state.put(vm_key(msid, fragment), {**record, "removed": ctx.height})

    @staticmethod
    def _write_document(
        ctx: Context,
        state: StateView,
        args: DocumentArgs,
        *,
        version: int,
        created: dict[str, Any] | None,
    ) -> None:
        methods: list[dict[str, Any]] = [
            {"id": vm.id, "publicKeyJwk": vm.publicKeyJwk.as_json()}
            for vm in args.verification_methods
        ]
        for vm in methods:
            if state.get(vm_key(args.msid, vm["id"])) is None:
                state.put(
                    vm_key(args.msid, vm["id"]),
                    {"publicKeyJwk": vm["publicKeyJwk"], "added": ctx.height, "removed": None},
                )
        state.put(
            did_key(args.msid),
            {
                "id": did_of(args.msid),
                "controller": created["controller"] if created else ctx.sender_org,
                "verificationMethod": methods,
                "authentication": list(args.authentication),
                "assertionMethod": list(args.assertion),
                "versionId": version,
                "created_ms": created["created_ms"] if created else ctx.time_ms,
                "created_height": created["created_height"] if created else ctx.height,
                "updated_ms": ctx.time_ms,
                "updated_height": ctx.height,
                "deactivated": False,
            },
        )
