"""The road-health service app: mounted at /roadhealth by the suite."""

from __future__ import annotations

from fastapi import FastAPI

from chain.bodies import BodyCeiling
from services.common.auth import authenticator
from services.common.context import ServiceContext
from services.common.db import Base, make_session_factory, session_dependency
from services.common.errors import install_error_handlers
from services.common.openapi import install_openapi
from services.roadhealth import (
    models,  # noqa: F401  (registers the tables on Base.metadata)
    service,
)
from services.roadhealth.analytics.kernels import limit_process_blas
from services.roadhealth.api import build_router
from services.roadhealth.runtime import Runtime, Settings

# The largest body a request needs: an ingest batch (docs/roadhealth-ingest.md: at most 5,000
# messages, 32 MiB); a segment import is at most 16 MiB
MAX_BODY_BYTES = 32 * 1024 * 1024


def create_app(ctx: ServiceContext) -> FastAPI:
    """Build the app: tables (with any index added since the database was made), segment
    index (demo network on first run), alert dispatcher (stopped by `ctx.close`).
    It also puts the process on one BLAS thread (the gate's features are computed on request
    threads, and must not depend on the machine nor on overlapping calls)."""
    limit_process_blas()
    settings = Settings.from_context(ctx)
    _engine, factory = make_session_factory(ctx.database_url, Base.metadata)
    rt = Runtime(ctx=ctx, settings=settings)
    # Sub-app startup hooks do not run when mounted, so set up here
    with factory() as session, session.begin():
        if settings.load_demo:
            service.load_demo_network(rt=rt, session=session)
        service.reload_index(rt=rt, session=session)
    dispatcher = service.AlertDispatcher(factory, settings)
    dispatcher.start()
    ctx.on_close(dispatcher.stop)
    rt.kick_alerts = dispatcher.kick
    stream = rt.chain.block_stream()
    if stream is not None:
        rt.device_records.follow(stream)
        ctx.on_close(rt.device_records.stop)
    app = FastAPI(
        title="smartcity road health",
        version="1",
        description="Road condition (IRI), potholes, maintenance priorities and alerts"
        " from signed vehicle telemetry. See docs/roadhealth.md.",
    )
    app.state.runtime = rt
    app.state.dispatcher = dispatcher
    install_error_handlers(app)
    install_openapi(app, audience=ctx.name)
    app.include_router(
        build_router(rt, authenticator(ctx.ledger, ctx.name), session_dependency(factory))
    )
    app.add_middleware(BodyCeiling, max_bytes=MAX_BODY_BYTES)
    app.router.on_shutdown.append(ctx.close)
    return app
