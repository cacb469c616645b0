"""Thin routers of the credit API: authenticate, parse, call the domain, return a schema.

No `from __future__ import annotations` here: the dependency aliases are local to
`build_router`, so FastAPI must see evaluated annotations.
"""

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy.orm import Session

from chain.auth import Caller
from chain.bodies import BoundedBody
from services.common.auth import require_role
from services.common.db import committed_before_response
from services.common.openapi import CHAIN_WRITE, REQUEST_CHECKS, Cause, chain_refusals, raises
from services.credit import schemas, service
from services.credit._service_errors import (
    BadInput,
    ConsentRequired,
    ModelNotFound,
    ModelUnavailable,
    NotYourSme,
    RatingNotFound,
    SmeNotFound,
    TooLarge,
)
from services.credit.chain import CreditChain
from services.credit.runtime import Runtime
from services.credit.service.uploads import MAX_UPLOAD_BYTES, UploadedFile, read_upload

# What a write to the chain can end in (services/credit/chain.py)
WRITE: tuple[Cause, ...] = (*chain_refusals(CreditChain), *CHAIN_WRITE)
EVERYONE = ("bank", "sme", "agency", "regulator", "operator", "committee")
# A page offset the databases can take (PostgreSQL's OFFSET is a bigint) and JSON can carry
MAX_OFFSET = 2**53 - 1
# An upload's raw body, refused as `too_large` past its limit before it is read whole
RawUpload = Annotated[bytes, Depends(BoundedBody(MAX_UPLOAD_BYTES, lambda: _too_large()))]


def _too_large() -> TooLarge:
    return TooLarge(f"an upload is at most {MAX_UPLOAD_BYTES} bytes")


# The upload as the document declares it (the body is read raw by read_upload)
_FILE = {"type": "string", "format": "binary"}
STATEMENTS_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": _FILE}}
        },
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": _FILE},
    },
}


def build_router(
    rt: Runtime,
    *,
    authenticate: Callable[[Request], Caller],
    get_session: Callable[[], Iterator[Session]],
) -> APIRouter:
    """Every credit endpoint, bound to this service's runtime, authenticator and database."""
    router = APIRouter(
        dependencies=REQUEST_CHECKS,
    )
    SessionDep = Annotated[Session, committed_before_response(get_session)]
    Anyone = Annotated[Caller, Depends(require_role(authenticate, *EVERYONE))]
    Agency = Annotated[Caller, Depends(require_role(authenticate, "agency"))]
    AgencyOrSme = Annotated[Caller, Depends(require_role(authenticate, "agency", "sme"))]
    Sme = Annotated[Caller, Depends(require_role(authenticate, "sme"))]
    Bank = Annotated[Caller, Depends(require_role(authenticate, "bank"))]
    BankOrSme = Annotated[Caller, Depends(require_role(authenticate, "bank", "sme"))]
    SmeOrRegulator = Annotated[Caller, Depends(require_role(authenticate, "sme", "regulator"))]
    Regulator = Annotated[Caller, Depends(require_role(authenticate, "regulator"))]
    Committee = Annotated[Caller, Depends(require_role(authenticate, "committee"))]

    async def uploaded(request: Request, raw: RawUpload) -> UploadedFile:
        return read_upload(request.headers.get("content-type", ""), raw)

    Upload = Annotated[UploadedFile, Depends(uploaded)]

    @router.get("/chain-params", tags=["chain"])
    def chain_params(_caller: Anyone) -> schemas.ChainParams:
        """Chain id and a suggested expiry height for transactions you sign (see sdk.py)."""
        return service.chain_params(rt=rt)

    # -- SMEs and statements ---------------------------------------------------------------

    @router.post(
        "/smes",
        status_code=status.HTTP_201_CREATED,
        tags=["smes"],
        responses=raises(BadInput, NotYourSme, *WRITE),
    )
    def register_sme(
        body: schemas.SmeRegistration, caller: AgencyOrSme, session: SessionDep
    ) -> schemas.SmeOut:
        """Register an SME by its USCC (an SME registers itself; an agency names its org)."""
        row = service.register_sme(rt=rt, session=session, caller=caller, entry=body)
        return schemas.SmeOut.model_validate(row, from_attributes=True)

    @router.post(
        "/smes/batch",
        status_code=status.HTTP_201_CREATED,
        tags=["smes"],
        responses=raises(BadInput, NotYourSme, *WRITE),
    )
    def register_smes(
        body: schemas.SmeBatch, caller: Agency, session: SessionDep
    ) -> schemas.SmeList:
        """Register many SMEs at once (agencies); any invalid entry refuses the whole batch."""
        rows = service.register_smes(rt=rt, session=session, caller=caller, entries=body.smes)
        return schemas.SmeList(
            smes=[schemas.SmeOut.model_validate(r, from_attributes=True) for r in rows]
        )

    @router.get("/smes", tags=["smes"])
    def list_smes(caller: Anyone, session: SessionDep) -> schemas.SmeList:
        """SMEs known to this service (an SME sees its own)."""
        rows = service.list_smes(session=session, caller=caller)
        return schemas.SmeList(
            smes=[schemas.SmeOut.model_validate(r, from_attributes=True) for r in rows]
        )

    @router.get("/smes/{uscc}", tags=["smes"], responses=raises(SmeNotFound))
    def get_sme(uscc: str, _caller: Anyone, session: SessionDep) -> schemas.SmeOut:
        """An SME's registration (public facts: USCC, organisation, key, DID)."""
        row = service.get_sme(rt=rt, session=session, uscc=uscc)
        return schemas.SmeOut.model_validate(row, from_attributes=True)

    @router.post(
        "/smes/{uscc}/statements",
        status_code=status.HTTP_201_CREATED,
        tags=["smes"],
        openapi_extra={"requestBody": STATEMENTS_BODY},
        responses=raises(BadInput, NotYourSme, SmeNotFound, TooLarge),
    )
    def upload_statements(
        uscc: str, upload: Upload, caller: AgencyOrSme, session: SessionDep
    ) -> schemas.UploadOut:
        """Upload statements (CSV or .xlsx, multipart field `file` or the raw file)."""
        return service.upload_statements(
            rt=rt, session=session, caller=caller, uscc=uscc, upload=upload
        )

    @router.get("/smes/{uscc}/statements", tags=["smes"], responses=raises(NotYourSme, SmeNotFound))
    def list_statements(
        uscc: str, caller: AgencyOrSme, session: SessionDep
    ) -> schemas.StatementList:
        """Stored periods with their ratio features (the SME itself or an agency)."""
        return service.list_statements(rt=rt, session=session, caller=caller, uscc=uscc)

    # -- ratings ---------------------------------------------------------------------------

    @router.post(
        "/smes/{uscc}/ratings",
        status_code=status.HTTP_201_CREATED,
        tags=["ratings"],
        responses=raises(BadInput, NotYourSme, SmeNotFound, ModelUnavailable, *WRITE),
    )
    def rate_sme(uscc: str, caller: AgencyOrSme, session: SessionDep) -> schemas.RatingOut:
        """Rate an SME on its latest statements and write the rating to the chain."""
        return service.rate_sme(rt=rt, session=session, caller=caller, uscc=uscc)

    @router.post("/ratings/batch", tags=["ratings"], responses=raises(ModelUnavailable, *WRITE))
    def rate_batch(
        body: schemas.RatingBatch, caller: Agency, session: SessionDep
    ) -> schemas.BatchOut:
        """Rate many SMEs; each failure is listed by USCC, the others are rated and on chain."""
        return service.rate_smes(
            rt=rt, session=session, caller=caller, usccs=body.usccs, anchored=body.anchor
        )

    @router.get(
        "/smes/{uscc}/rating",
        tags=["ratings"],
        responses=raises(
            BadInput,
            ConsentRequired,
            NotYourSme,
            SmeNotFound,
            RatingNotFound,
            *chain_refusals(CreditChain),
        ),
    )
    def read_rating(
        uscc: str,
        caller: BankOrSme,
        session: SessionDep,
        purpose: Annotated[schemas.Purpose | None, Query()] = None,
    ) -> schemas.BankAnswer | schemas.RatingOut:
        """A bank reads under the SME's consent (recorded on chain); an SME reads its own."""
        if "bank" in caller.roles:
            if purpose is None:
                raise BadInput(
                    "purpose: required for a bank (loan_application or monitoring)",
                    code="missing_purpose",
                )
            return service.bank_read_rating(
                rt=rt, session=session, caller=caller, uscc=uscc, purpose=purpose
            )
        return service.own_rating(rt=rt, session=session, caller=caller, uscc=uscc)

    @router.get(
        "/smes/{uscc}/ratings",
        tags=["ratings"],
        responses=raises(NotYourSme, SmeNotFound, RatingNotFound),
    )
    def rating_history(
        uscc: str, caller: SmeOrRegulator, session: SessionDep
    ) -> schemas.RatingHistory:
        """The SME's ratings, newest first (the SME itself, or a regulator without values)."""
        return service.rating_history(rt=rt, session=session, caller=caller, uscc=uscc)

    # -- consents and inquiries ------------------------------------------------------------

    @router.post(
        "/consents",
        status_code=status.HTTP_201_CREATED,
        tags=["consents"],
        responses=raises(BadInput, NotYourSme, SmeNotFound, *WRITE),
    )
    def grant_consent(
        body: schemas.SignedTx, caller: Sme, session: SessionDep
    ) -> schemas.ConsentOut:
        """Submit the SME's own signed credit.grant_consent transaction."""
        return service.submit_consent(
            rt=rt, session=session, caller=caller, raw_tx=body.tx, grant=True
        )

    @router.post(
        "/consents/revocations",
        tags=["consents"],
        responses=raises(BadInput, NotYourSme, SmeNotFound, *WRITE),
    )
    def revoke_consent(
        body: schemas.SignedTx, caller: Sme, session: SessionDep
    ) -> schemas.ConsentOut:
        """Submit the SME's own signed credit.revoke_consent transaction."""
        return service.submit_consent(
            rt=rt, session=session, caller=caller, raw_tx=body.tx, grant=False
        )

    @router.get("/consents", tags=["consents"])
    def list_consents(caller: BankOrSme, session: SessionDep) -> schemas.ConsentList:
        """Consents an SME granted, or those granted to the calling bank."""
        return service.list_consents(rt=rt, session=session, caller=caller)

    @router.get(
        "/smes/{uscc}/inquiries", tags=["inquiries"], responses=raises(NotYourSme, SmeNotFound)
    )
    def sme_inquiries(
        uscc: str, caller: SmeOrRegulator, session: SessionDep
    ) -> schemas.InquiryList:
        """Who read this SME's rating, newest first (the SME itself or a regulator)."""
        return service.sme_inquiries(rt=rt, session=session, caller=caller, uscc=uscc)

    @router.get("/inquiries", tags=["inquiries"])
    def all_inquiries(
        _caller: Regulator,
        session: SessionDep,
        bank: str | None = None,
        uscc: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> schemas.InquiryList:
        """Every inquiry recorded on the chain (regulators), newest first."""
        return service.all_inquiries(
            rt=rt, session=session, bank=bank, uscc=uscc, limit=limit, offset=offset
        )

    @router.get("/banks/me/inquiries", tags=["inquiries"])
    def my_inquiries(
        caller: Bank,
        session: SessionDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> schemas.InquiryList:
        """The calling bank's own rating reads, as recorded on the chain, newest first."""
        return service.bank_inquiries(
            rt=rt, session=session, bank=caller.org, limit=limit, offset=offset
        )

    # -- model registry --------------------------------------------------------------------

    @router.get("/models", tags=["models"], responses=raises(*WRITE))
    def list_models(_caller: Anyone) -> schemas.ModelList:
        """Installed model versions with their on-chain status and validation metrics."""
        return service.list_models(rt=rt)

    @router.get("/models/{sha256}", tags=["models"], responses=raises(ModelNotFound, *WRITE))
    def get_model(sha256: str, _caller: Anyone) -> schemas.ModelDetail:
        """One model version's chain record with its state proof."""
        return service.get_model(rt=rt, sha256=sha256)

    @router.post("/models/{sha256}/governance", tags=["models"], responses=raises(BadInput, *WRITE))
    def model_governance(
        sha256: str, body: schemas.SignedTx, caller: Committee
    ) -> schemas.GovernanceOut:
        """Submit a committee member's own signed proposal or vote to approve/retire a model."""
        return service.submit_governance(rt=rt, caller=caller, sha256=sha256, raw_tx=body.tx)

    return router
