"""Request and response bodies of the identity API."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.common.openapi import UtcDatetime
from services.identity.contract import FRAGMENT, TYPE_NAME

Purpose = Literal["authentication", "assertionMethod"]
CLAIM_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
REASON = r"^[a-z0-9_]{0,64}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- DIDs ------------------------------------------------------------------------------------------


class KeyIn(Body):
    id: str | None = Field(default=None, pattern=FRAGMENT, description="key fragment, e.g. key-1")
    publicKeyJwk: dict[str, Any]
    purposes: list[Purpose] = Field(default=["authentication", "assertionMethod"], min_length=1)


class CreateDid(Body):
    keys: list[KeyIn] = Field(min_length=1, max_length=8)


class UpdateDid(Body):
    keys: list[KeyIn] = Field(min_length=1, max_length=8)
    version: int = Field(ge=1, description="the versionId being replaced")


class IssuerKeysIn(Body):
    algs: list[Literal["EdDSA", "ES256"]] = Field(default=["EdDSA", "ES256"], min_length=1)


class ResolutionOut(BaseModel):
    """A DID Resolution result (W3C DID Resolution), as the Universal Resolver drivers answer."""

    context: str = Field(alias="@context")
    didDocument: dict[str, Any] | None
    didResolutionMetadata: dict[str, Any]
    didDocumentMetadata: dict[str, Any]


class DidOut(BaseModel):
    did: str
    didDocument: dict[str, Any]
    didDocumentMetadata: dict[str, Any]
    tx: str | None = None


# -- types and issuers -----------------------------------------------------------------------------


class TypeIn(Body):
    name: str = Field(pattern=TYPE_NAME)
    json_schema: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TypeOut(BaseModel):
    name: str
    schema_hash: str
    json_schema: dict[str, Any] = Field(serialization_alias="schema")
    org: str
    height: int
    tx: str | None = None


class IssuerOut(BaseModel):
    org: str
    did: str
    types: dict[str, list[list[int | None]]]
    authorised_now: list[str]
    proof: dict[str, Any] | None = None


# -- credentials -----------------------------------------------------------------------------------


class ZkIn(Body):
    age: str | None = Field(default=None, pattern=CLAIM_NAME, description="a YYYY-MM-DD claim")
    residency: str | None = Field(default=None, pattern=CLAIM_NAME, description="a city code claim")


class IssueIn(Body):
    type: str = Field(pattern=TYPE_NAME)
    subject: str = Field(min_length=1, max_length=128, description="the holder's DID")
    claims: dict[str, Any]
    format: Literal["vc+jwt", "vc+sd-jwt", "vc+cose"] = "vc+sd-jwt"
    alg: Literal["EdDSA", "ES256"] = "EdDSA"
    disclose: list[str] | None = Field(
        default=None, description="claims made selectively disclosable (default: all)"
    )
    # With an offset: a naive time would be read in the server's own zone (and compared with
    # an aware one, a 500)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    holder_binding: bool = True
    zk: ZkIn | None = None


class IssueBatchIn(Body):
    items: list[IssueIn] = Field(min_length=1, max_length=2000)


class StatusEntryOut(BaseModel):
    purpose: str
    list: int
    index: int
    value: int


class IssueOut(BaseModel):
    id: str
    type: str
    format: str
    issuer: str
    subject: str
    credential: str
    hash: str
    status: list[dict[str, Any]]
    anchor: dict[str, Any]
    zk_openings: dict[str, dict[str, Any]] | None = None


class IssueBatchOut(BaseModel):
    credentials: list[IssueOut]
    transactions: list[str]


class StatusChangeIn(Body):
    reason: str = Field(default="", pattern=REASON)


class CredentialOut(BaseModel):
    id: str
    type: str
    format: str
    subject: str
    hash: str
    claims: dict[str, Any]
    revoked: bool
    suspended: bool
    list: int
    index: int
    anchor: dict[str, Any]


class CredentialSummary(BaseModel):
    """A credential in a listing: metadata only, never its claims."""

    id: str
    type: str
    format: str
    issuer: str = Field(description="the issuing agency's DID")
    issuer_org: str
    subject: str | None = Field(description="the holder's DID; null unless you issued it")
    hash: str
    status: Literal["issued", "suspended", "revoked"]
    status_height: int | None = Field(description="block of the revocation or suspension")
    issued_at: UtcDatetime
    anchor: dict[str, Any]
    list: int
    index: int


class CredentialListOut(BaseModel):
    credentials: list[CredentialSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class StatusChangeOut(BaseModel):
    id: str
    purpose: str
    value: int
    tx: str
    height: int
    revoked: bool
    suspended: bool


# -- verification ----------------------------------------------------------------------------------


class VerifyIn(Body):
    credential: str = Field(min_length=1, max_length=200_000)
    include_proofs: bool = True


class CheckOut(BaseModel):
    status: Literal["passed", "failed", "skipped"]
    message: str


class VerifyOut(BaseModel):
    verified: bool
    format: str
    issuer: str | None
    type: str | None
    subject: str | None = Field(description="the first subject's id")
    subjects: list[str] = Field(description="every subject's id (VCDM 2.0 allows several)")
    checks: dict[str, CheckOut]
    claims: dict[str, Any]
    disclosed: list[str]
    proofs: dict[str, Any]


class ChallengeIn(Body):
    audience: str | None = Field(default=None, min_length=1, max_length=200)
    ttl_s: int = Field(default=300, ge=10, le=3600)


class ChallengeOut(BaseModel):
    nonce: str
    audience: str
    expires_at: UtcDatetime


class PresentationIn(Body):
    presentation: str = Field(min_length=1, max_length=400_000)
    nonce: str = Field(min_length=1, max_length=64)
    include_proofs: bool = True


class PresentationOut(BaseModel):
    verified: bool
    nonce: str
    audience: str
    holder: str | None
    checks: dict[str, CheckOut]
    credentials: list[VerifyOut]


class ZkVerifyIn(Body):
    credential: str = Field(min_length=1, max_length=200_000)
    predicate: Literal["age_at_least", "residency"]
    min_age_years: int | None = Field(default=None, ge=0, le=150)
    reference_date: date | None = None
    city_code: int | None = Field(default=None, ge=0, lt=2**40)
    proof: dict[str, Any]
    nonce: str = Field(min_length=1, max_length=64)
    include_proofs: bool = True


class ZkVerifyOut(BaseModel):
    verified: bool
    predicate: str
    statement: dict[str, Any]
    checks: dict[str, CheckOut]
    issuer: str | None
    type: str | None
    proofs: dict[str, Any]
