"""The identity HTTP API: thin routers that authenticate, parse, call the domain, answer."""

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from chain.auth import Caller
from chain.json_types import JsonObject
from services.common.auth import caller_dependency, require_role
from services.common.db import committed_before_response
from services.common.openapi import (
    CHAIN_WRITE,
    REQUEST_CHECKS,
    Cause,
    ErrorOut,
    chain_refusals,
    raises,
)
from services.identity import contract as c
from services.identity import service as svc
from services.identity import verification as ver
from services.identity.chain import IdentityChain
from services.identity.errors import (
    BadRequest,
    BadSchema,
    ChallengeUsed,
    CredentialError,
    DidDeactivated,
    DisclosureError,
    InvalidClaims,
    InvalidDisclosure,
    InvalidKey,
    IssuerStillAuthorised,
    KeyBindingError,
    MalformedToken,
    NoCustody,
    NotController,
    ProofError,
    SchemaViolation,
    StatusListError,
    StatusListsFull,
    UndisclosableClaim,
    UnknownChallenge,
    UnknownCredential,
    UnknownCredentialProperty,
    UnknownDid,
    UnknownType,
    UnsupportedAlgorithm,
)
from services.identity.runtime import Runtime
from services.identity.schemas import (
    ChallengeIn,
    ChallengeOut,
    CreateDid,
    CredentialListOut,
    CredentialOut,
    CredentialSummary,
    DidOut,
    IssueBatchIn,
    IssueBatchOut,
    IssueIn,
    IssueOut,
    IssuerKeysIn,
    IssuerOut,
    PresentationIn,
    PresentationOut,
    ResolutionOut,
    StatusChangeIn,
    StatusChangeOut,
    StatusListOut,
    TypeIn,
    TypeOut,
    UpdateDid,
    VerifyIn,
    VerifyOut,
    ZkVerifyIn,
    ZkVerifyOut,
    inlined_schema,
)

AGENCY = "agency"
REGULATOR = "regulator"
STATUSES: list[Any] = list(svc.CREDENTIAL_STATUSES)  # documented; the domain answers 400 others
# What a write signed as the acting organisation can end in (services/identity/chain.py)
WRITE: tuple[Cause, ...] = (*chain_refusals(IdentityChain), NoCustody, *CHAIN_WRITE)
# What a credential can be refused for when it is made (schema, data model, keys, disclosures)
ISSUANCE: tuple[Cause, ...] = (
    BadRequest,
    SchemaViolation,
    InvalidClaims,
    UnknownCredentialProperty,
    UndisclosableClaim,
    InvalidDisclosure,
    InvalidKey,
    MalformedToken,
    UnsupportedAlgorithm,
    StatusListError,
)
# What a presentation is refused for: its code says which (signature, times, nonce, audience, ...)
PRESENTATION: tuple[Cause, ...] = (CredentialError, DisclosureError, KeyBindingError)
RESOLUTION_CONTEXT = "https://w3id.org/did-resolution/v1"
RESOLUTION_MEDIA = 'application/ld+json;profile="https://w3id.org/did-resolution"'
_RESOLUTION = {"content": {RESOLUTION_MEDIA: {"schema": inlined_schema(ResolutionOut)}}}
RESOLUTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {**_RESOLUTION, "description": "the DID document and its metadata"},
    400: {
        **_RESOLUTION,
        "model": ErrorOut,
        "description": "`invalidDid`: not a did:smartcity DID",
    },
    404: {
        **_RESOLUTION,
        "model": ErrorOut,
        "description": "`notFound`: no such DID on the chain",
    },
    410: {
        **_RESOLUTION,
        "description": "`deactivated`: the DID is deactivated (an empty document)",
    },
}


def build_router(
    rt: Runtime,
    authenticate: Callable[[Request], Caller],
    get_session: Callable[[], Iterator[Session]],
) -> APIRouter:
    """All identity routes, bound to one environment, authenticator and session factory."""
    router = APIRouter(
        dependencies=REQUEST_CHECKS,
    )
    AnyCaller = Annotated[Caller, Depends(caller_dependency(authenticate))]

    Agency = Annotated[Caller, Depends(require_role(authenticate, AGENCY))]
    Auditor = Annotated[Caller, Depends(require_role(authenticate, AGENCY, REGULATOR))]
    Db = Annotated[Session, committed_before_response(get_session)]

    def did_out(record: dict[str, Any], tx: str | None = None) -> DidOut:
        document, metadata = svc.did_document(record)
        return DidOut(did=record["id"], didDocument=document, didDocumentMetadata=metadata, tx=tx)

    # -- DIDs ------------------------------------------------------------------------------------

    @router.post(
        "/dids",
        status_code=201,
        tags=["dids"],
        responses=raises(InvalidKey, MalformedToken, *WRITE),
    )
    def create_did(body: CreateDid, caller: Agency) -> DidOut:
        """Register a holder's DID (its id derived from its first key); the agency controls it."""
        record, tx = svc.create_holder_did(rt=rt, org=caller.org, keys=body.keys)
        return did_out(record, tx)

    @router.get("/dids/{did}", tags=["dids"], responses=raises(UnknownDid))
    def get_did(did: str, caller: AnyCaller) -> DidOut:
        return did_out(svc.did_record(rt=rt, did=did))

    @router.put(
        "/dids/{did}/keys", tags=["dids"], responses=raises(InvalidKey, MalformedToken, *WRITE)
    )
    def rotate_keys(did: str, body: UpdateDid, caller: AnyCaller) -> DidOut:
        """Replace a DID's keys (rotation); only its controlling organisation may."""
        record, tx = svc.update_did_keys(
            rt=rt, org=caller.org, did=did, keys=body.keys, version=body.version
        )
        return did_out(record, tx)

    @router.delete("/dids/{did}", tags=["dids"], responses=raises(IssuerStillAuthorised, *WRITE))
    def deactivate(did: str, caller: AnyCaller) -> DidOut:
        record, tx = svc.deactivate_did(rt=rt, org=caller.org, did=did)
        return did_out(record, tx)

    @router.get(
        "/1.0/identifiers/{did}", tags=["dids"], response_model=None, responses=RESOLUTION_RESPONSES
    )
    def resolve(
        did: str, caller: AnyCaller, proof: Annotated[bool, Query()] = False
    ) -> JSONResponse:
        """DIF Universal Resolver driver interface; `?proof=true` adds the chain's state proof."""
        return _resolution(rt, did, proof)

    # -- issuers and types -----------------------------------------------------------------------

    @router.post(
        "/issuers/me/keys",
        status_code=201,
        tags=["issuers"],
        responses=raises(InvalidKey, MalformedToken, *WRITE),
    )
    def issuer_keys(body: IssuerKeysIn, caller: Agency, session: Db) -> DidOut:
        """Create or rotate the agency's signing keys, published in did:smartcity:<org>."""
        record, tx = svc.setup_issuer_keys(
            rt=rt, session=session, org=caller.org, algs=list(body.algs)
        )
        return did_out(record, tx)

    @router.get("/issuers/{org}", tags=["issuers"])
    def issuer(org: str, caller: AnyCaller) -> IssuerOut:
        record = svc.issuer_record(rt=rt, org=org)
        height = rt.chain.height()
        now = [t for t in record["types"] if c.is_authorised(record, t, height)]
        return IssuerOut(
            org=org,
            did=c.did_of(org),
            types=record["types"],
            authorised_now=now,
            proof=rt.chain.proof(c.issuer_key(org)),
        )

    @router.post("/types", status_code=201, tags=["types"], responses=raises(BadSchema, *WRITE))
    def register_type(body: TypeIn, caller: Agency, session: Db) -> TypeOut:
        row, height, tx = svc.register_type(
            rt=rt, session=session, org=caller.org, name=body.name, schema=body.json_schema
        )
        return TypeOut(
            name=row.name,
            schema_hash=row.schema_hash,
            json_schema=row.schema_json,
            org=row.org,
            height=height,
            tx=tx,
        )

    @router.get("/types/{name}", tags=["types"], responses=raises(UnknownType))
    def get_type(name: str, caller: AnyCaller, session: Db) -> TypeOut:
        row, on_chain = svc.get_type(rt=rt, session=session, name=name)
        return TypeOut(
            name=row.name,
            schema_hash=row.schema_hash,
            json_schema=row.schema_json,
            org=row.org,
            height=on_chain["height"],
        )

    @router.get("/schemas/{name}", tags=["types"], responses=raises(UnknownType))
    def get_schema(name: str, caller: AnyCaller, session: Db) -> JsonObject:
        return svc.get_type(rt=rt, session=session, name=name)[0].schema_json

    # -- credentials -----------------------------------------------------------------------------

    @router.post(
        "/credentials",
        status_code=201,
        tags=["credentials"],
        responses=raises(*ISSUANCE, StatusListsFull, *WRITE),
    )
    def issue(body: IssueIn, caller: Agency, session: Db) -> IssueOut:
        """Issue one credential: schema-checked, signed, anchored, with a status entry."""
        results, _ = svc.issue(rt=rt, session=session, org=caller.org, items=[body])
        return _issue_out(results[0], caller.org)

    @router.post(
        "/credentials/batch",
        status_code=201,
        tags=["credentials"],
        responses=raises(*ISSUANCE, StatusListsFull, *WRITE),
    )
    def issue_batch(body: IssueBatchIn, caller: Agency, session: Db) -> IssueBatchOut:
        """Issue many credentials, anchored together (256 per transaction)."""
        results, txs = svc.issue(rt=rt, session=session, org=caller.org, items=body.items)
        return IssueBatchOut(
            credentials=[_issue_out(r, caller.org) for r in results], transactions=txs
        )

    @router.post("/credentials/verify", tags=["verify"])
    async def verify(body: VerifyIn, caller: AnyCaller, session: Db) -> VerifyOut:
        """Verify a credential against the chain; each check reported, with its proofs."""
        report = await ver.verify_credential_async(
            rt=rt, session=session, token=body.credential, include_proofs=body.include_proofs
        )
        return VerifyOut.model_validate(report.as_json())

    @router.get(
        "/credentials",
        tags=["credentials"],
        responses=raises(BadRequest, NotController, UnknownType),
    )
    def list_credentials(
        caller: Auditor,
        session: Db,
        status: Annotated[
            str | None, Query(max_length=16, json_schema_extra={"enum": STATUSES})
        ] = None,
        type_name: Annotated[str | None, Query(alias="type", max_length=64)] = None,
        issuer: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> CredentialListOut:
        """Issued credentials' metadata, newest first: an agency's own, or any (a regulator)."""
        listed, next_cursor = svc.list_credentials(
            rt=rt,
            session=session,
            org=caller.org,
            roles=caller.roles,
            issuer=issuer,
            status=status,
            type_name=type_name,
            limit=limit,
            cursor=cursor,
        )
        return CredentialListOut(credentials=[_summary(x) for x in listed], next_cursor=next_cursor)

    @router.get(
        "/credentials/{credential_id}",
        tags=["credentials"],
        responses=raises(NotController, UnknownCredential),
    )
    def get_credential(credential_id: str, caller: Agency, session: Db) -> CredentialOut:
        row = svc.own_credential(
            rt=rt, session=session, org=caller.org, credential_id=credential_id
        )
        return CredentialOut(
            id=row.id,
            type=row.type,
            format=row.format,
            subject=row.subject_did,
            hash=row.hash,
            claims=svc.credential_claims(rt=rt, row=row),
            revoked=row.revoked,
            suspended=row.suspended,
            list=row.list_no,
            index=row.list_index,
            anchor={"tx": row.anchor_tx, "height": row.anchor_height},
        )

    def status_route(purpose: str, value: int) -> Callable[..., StatusChangeOut]:
        def change(
            credential_id: str, caller: Agency, session: Db, body: StatusChangeIn | None = None
        ) -> StatusChangeOut:
            reason = body.reason if body else ""
            row, receipt = svc.change_status(
                rt=rt,
                session=session,
                org=caller.org,
                credential_id=credential_id,
                purpose=purpose,
                value=value,
                reason=reason,
            )
            return StatusChangeOut(
                id=row.id,
                purpose=purpose,
                value=value,
                tx=receipt["tx"],
                height=receipt["height"],
                revoked=row.revoked,
                suspended=row.suspended,
            )

        return change

    for action, purpose, value in (
        ("revoke", "revocation", 1),
        ("suspend", "suspension", 1),
        ("reinstate", "suspension", 0),
    ):
        router.add_api_route(
            f"/credentials/{{credential_id}}/{action}",
            status_route(purpose, value),
            methods=["POST"],
            tags=["credentials"],
            summary=f"{action} a credential",
            responses=raises(UnknownCredential, *WRITE),
        )

    @router.get(
        "/status-lists/{org}/{list_no}/{purpose}", tags=["credentials"], responses=raises(*ISSUANCE)
    )
    def status_list(
        org: str,
        list_no: Annotated[int, Path(ge=0, lt=c.MAX_LISTS)],
        purpose: Literal["revocation", "suspension"],
        caller: AnyCaller,
        session: Db,
    ) -> StatusListOut:
        """The W3C BitstringStatusListCredential, rebuilt from the chain's status keys."""
        document, token = svc.status_list_document(
            rt=rt, session=session, org=org, list_no=list_no, purpose=purpose
        )
        return StatusListOut(document=document, credential=token)

    # -- presentations and zero-knowledge predicates -----------------------------------------------

    @router.post("/challenges", status_code=201, tags=["verify"])
    def challenge(body: ChallengeIn, caller: AnyCaller, session: Db) -> ChallengeOut:
        """A nonce (and audience) for a holder's presentation or proof; it is accepted once."""
        row = ver.create_challenge(
            rt=rt, session=session, org=caller.org, audience=body.audience, ttl_s=body.ttl_s
        )
        return ChallengeOut(nonce=row.nonce, audience=row.audience, expires_at=row.expires_at)

    @router.post(
        "/presentations/verify",
        tags=["verify"],
        responses=raises(UnknownChallenge, ChallengeUsed, *PRESENTATION),
    )
    def verify_presentation(
        body: PresentationIn, caller: AnyCaller, session: Db
    ) -> PresentationOut:
        result = ver.verify_presentation(
            rt=rt,
            session=session,
            org=caller.org,
            presentation=body.presentation,
            nonce=body.nonce,
            include_proofs=body.include_proofs,
        )
        return PresentationOut.model_validate(result)

    @router.post(
        "/zk/verify",
        tags=["verify"],
        responses=raises(UnknownChallenge, ChallengeUsed, ProofError, *PRESENTATION),
    )
    def verify_zk(body: ZkVerifyIn, caller: AnyCaller, session: Db) -> ZkVerifyOut:
        """Verify an age-at-least or residency proof against the credential's signed commitment."""
        result = ver.verify_zk(
            rt=rt,
            session=session,
            org=caller.org,
            credential=body.credential,
            predicate=body.predicate,
            min_age_years=body.min_age_years,
            reference_date=body.reference_date,
            city_code=body.city_code,
            proof=body.proof,
            nonce=body.nonce,
            include_proofs=body.include_proofs,
        )
        return ZkVerifyOut.model_validate(result)

    return router


def _issue_out(result: tuple[svc.Prepared, dict[str, Any]], org: str) -> IssueOut:
    prepared, anchor = result
    return IssueOut(
        id=prepared.id,
        type=prepared.request.type,
        format=prepared.request.format,
        issuer=c.did_of(org),
        subject=prepared.request.subject,
        credential=prepared.token,
        hash=prepared.hash,
        status=svc.status_entries(prepared),
        anchor=anchor,
        zk_openings=prepared.openings,
    )


def _summary(listed: svc.ListedCredential) -> CredentialSummary:
    row = listed.row
    return CredentialSummary(
        id=row.id,
        type=row.type,
        format=row.format,
        issuer=c.did_of(row.org),
        issuer_org=row.org,
        subject=row.subject_did if listed.show_subject else None,
        hash=row.hash,
        status=listed.status,
        status_height=listed.status_height,
        issued_at=row.issued_at,
        anchor={"tx": row.anchor_tx, "height": row.anchor_height},
        list=row.list_no,
        index=row.list_index,
    )


def _resolution(rt: Runtime, did: str, with_proof: bool) -> JSONResponse:
    metadata: dict[str, Any] = {"contentType": "application/did+ld+json"}
    body: dict[str, Any] = {
        "@context": RESOLUTION_CONTEXT,
        "didDocument": None,
        "didResolutionMetadata": metadata,
        "didDocumentMetadata": {},
    }
    status = 200
    try:
        record = svc.did_record(rt=rt, did=did)
        document, doc_metadata = svc.did_document(record)
        body["didDocument"], body["didDocumentMetadata"] = document, doc_metadata
        if record["deactivated"]:
            status = 410
    except UnknownDid as exc:
        invalid = exc.code == "invalid_did"
        metadata.pop("contentType")
        metadata.update(error="invalidDid" if invalid else "notFound", errorMessage=str(exc))
        status = 400 if invalid else 404
    except DidDeactivated:  # pragma: no cover - did_record returns deactivated records
        status = 410
    msid = c.msid_of(did)
    if with_proof and msid is not None:
        metadata["chainProof"] = rt.chain.proof(c.did_key(msid))
    return JSONResponse(body, status_code=status, media_type=RESOLUTION_MEDIA)
