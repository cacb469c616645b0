"""The credit service's FastAPI app, mounted by the suite at /credit."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData

from chain.bodies import BodyCeiling
from chain.errors import ChainError
from services.common.auth import authenticator
from services.common.context import ServiceContext
from services.common.db import Base, make_session_factory, session_dependency
from services.common.errors import error_body, install_error_handlers
from services.common.openapi import install_openapi
from services.credit import models
from services.credit._service_errors import as_service_error
from services.credit.api import build_router
from services.credit.errors import CreditError
from services.credit.model_store import ModelStore
from services.credit.runtime import Runtime
from services.credit.service import ensure_models_registered

log = logging.getLogger(__name__)
# The largest body a request needs: a batch of 20,000 SME registrations with every field at its
# longest (about 1.1 kB each in UTF-8); a statement upload is at most 5 MiB. docs/api.md
MAX_BODY_BYTES = 32 * 1024 * 1024
TABLES = [
    models.SmeRow,
    models.UploadRow,
    models.StatementRow,
    models.FeatureRow,
    models.FeatureVectorRow,
    models.RatingRow,
    models.RatingBatchRow,
    models.BatchRatingRow,
    models.ConsentRow,
    models.InquiryRow,
]


def create_app(ctx: ServiceContext) -> FastAPI:
    """Build the app: its tables, its model versions (registered on the chain), its routes."""
    engine, factory = make_session_factory(ctx.database_url, MetaData())
    Base.metadata.create_all(engine, tables=[t.__table__ for t in TABLES])  # type: ignore[misc]
    rt = Runtime(ctx=ctx, models=ModelStore.discover(ctx.data_dir))
    try:
        # Sub-app startup hooks do not run when mounted, and the block producer may not run
        # yet: submit without waiting; the first request that needs a model completes it.
        ensure_models_registered(rt=rt, wait=False)
    except ChainError as exc:
        log.warning("credit models not registered on the chain yet: %s", exc)
    app = FastAPI(
        title="SME credit",
        version="1",
        description="SME registry, statements, ratings on the chain, consent and audited reads.",
    )
    install_error_handlers(app)
    install_openapi(app, audience=ctx.name)

    @app.exception_handler(CreditError)
    async def credit_error(_r: Request, exc: CreditError) -> JSONResponse:
        error = as_service_error(exc)
        return error_body(error.status, error.code, error.message, error.details)

    app.include_router(
        build_router(
            rt,
            authenticate=authenticator(ctx.ledger, ctx.name),
            get_session=session_dependency(factory),
        )
    )
    app.add_middleware(BodyCeiling, max_bytes=MAX_BODY_BYTES)
    app.router.on_shutdown.append(ctx.close)
    app.state.credit = rt
    return app
