"""Request and response bodies of the identity API."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, NotRequired

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from chain.json_types import JsonObjectAsIs, JsonObjectIn
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
    publicKeyJwk: JsonObjectIn
    purposes: list[Purpose] = Field(default=["authentication", "assertionMethod"], min_length=1)


class CreateDid(Body):
    keys: list[KeyIn] = Field(min_length=1, max_length=8)


class UpdateDid(Body):
    keys: list[KeyIn] = Field(min_length=1, max_length=8)
    version: int = Field(ge=1, description="the versionId being replaced")


class IssuerKeysIn(Body):
    algs: list[Literal["EdDSA", "ES256"]] = Field(default=["EdDSA", "ES256"], min_length=1)


class VerificationMethod(TypedDict):
    id: str  # did#fragment
    type: Literal["JsonWebKey"]
    controller: str
    publicKeyJwk: JsonObjectAsIs


# W3C DID Core; a deactivated DID's document keeps only @context and id
DidDocument = TypedDict(
    "DidDocument",
    {
        "@context": list[str],
        "id": str,
        "verificationMethod": NotRequired[list[VerificationMethod]],
        "authentication": NotRequired[list[str]],
        "assertionMethod": NotRequired[list[str]],
    },
)


class DidChainRef(TypedDict):
    namespace: str
    key: str
    createdHeight: int
    updatedHeight: int


class DidMetadata(TypedDict):
    created: str
    updated: str
    versionId: str
    deactivated: bool
    controllerOrg: str
    chain: DidChainRef


class NoMetadata(TypedDict):
    """{}: an unknown DID's document metadata."""


class ResolutionMetadata(TypedDict):
    contentType: NotRequired[str]
    error: NotRequired[Literal["invalidDid", "notFound"]]
    errorMessage: NotRequired[str]
    chainProof: NotRequired[JsonObjectAsIs]


class ResolutionOut(BaseModel):
    """A DID Resolution result (W3C DID Resolution), as the Universal Resolver drivers answer."""

    context: str = Field(alias="@context")
    didDocument: DidDocument | None
    didResolutionMetadata: ResolutionMetadata
    didDocumentMetadata: DidMetadata | NoMetadata


def inlined_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its `$defs` written in place (none of them recursive), for a
    response content FastAPI does not collect into the document's components."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return walk(schema)  # type: ignore[no-any-return]


class DidOut(BaseModel):
    did: str
    didDocument: DidDocument
    didDocumentMetadata: DidMetadata
    tx: str | None = None


# -- types and issuers -----------------------------------------------------------------------------


class TypeIn(Body):
    name: str = Field(pattern=TYPE_NAME)
    json_schema: JsonObjectIn = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TypeOut(BaseModel):
    name: str
    schema_hash: str
    json_schema: JsonObjectAsIs = Field(serialization_alias="schema")
    org: str
    height: int
    tx: str | None = None


class IssuerOut(BaseModel):
    org: str
    did: str
    types: dict[str, list[list[int | None]]]
    authorised_now: list[str]
    proof: JsonObjectAsIs | None = None


# -- credentials -----------------------------------------------------------------------------------


class ZkIn(Body):
    age: str | None = Field(default=None, pattern=CLAIM_NAME, description="a YYYY-MM-DD claim")
    residency: str | None = Field(default=None, pattern=CLAIM_NAME, description="a city code claim")


class IssueIn(Body):
    type: str = Field(pattern=TYPE_NAME)
    subject: str = Field(min_length=1, max_length=128, description="the holder's DID")
    claims: JsonObjectIn
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


class StatusEntryOut(TypedDict):
    purpose: str
    list: int
    index: int
    value: int


class AnchorOut(TypedDict):
    """The transaction (and its block) that anchored a credential's hash."""

    tx: str
    height: int


class ZkOpening(TypedDict):
    """What the holder needs to prove a predicate over a committed claim."""

    value: int
    blinding: str  # 0x-prefixed hex


class IssueOut(BaseModel):
    id: str
    type: str
    format: str
    issuer: str
    subject: str
    credential: str
    hash: str
    status: list[StatusEntryOut]
    anchor: AnchorOut
    zk_openings: dict[str, ZkOpening] | None = None


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
    claims: JsonObjectAsIs
    revoked: bool
    suspended: bool
    list: int
    index: int
    anchor: AnchorOut


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
    anchor: AnchorOut
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
    claims: JsonObjectAsIs
    disclosed: list[str]
    proofs: JsonObjectAsIs


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
    proof: JsonObjectIn
    nonce: str = Field(min_length=1, max_length=64)
    include_proofs: bool = True


class ZkVerifyOut(BaseModel):
    verified: bool
    predicate: str
    statement: JsonObjectAsIs
    checks: dict[str, CheckOut]
    issuer: str | None
    type: str | None
    proofs: JsonObjectAsIs


class StatusListOut(BaseModel):
    document: JsonObjectAsIs = Field(description="the BitstringStatusListCredential")
    credential: str | None = Field(description="the same document, signed")
