"""The identity service's FastAPI app, mounted by the suite at /identity."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from fastapi import FastAPI
from sqlalchemy import MetaData, Table

from chain.bodies import BodyCeiling
from chain.errors import ChainError
from chain.home import SuiteHome
from services.common.auth import authenticator
from services.common.context import ServiceContext
from services.common.db import make_session_factory, session_dependency
from services.common.errors import install_error_handlers
from services.common.openapi import install_openapi
from services.identity import models
from services.identity.api import build_router
from services.identity.runtime import Runtime
from services.identity.service.entries import entry_order_key
from services.identity.vault import Vault, load_or_create_key

TABLES = (
    models.IssuerKey,
    models.CredentialType,
    models.IssuedCredential,
    models.EntryCounter,
    models.Challenge,
)
DEFAULT_BASE_URL = "http://127.0.0.1:8000/identity"
# The largest body a request needs: a batch of 2,000 credentials with claims of up to 8 KiB
# each (a presentation to verify is at most 400,000 characters); docs/api.md, request sizes
MAX_BODY_BYTES = 16 * 1024 * 1024


def vault_key_path(data_dir: Path) -> Path:
    """Where the data key lives: generated on first run, mode 0600."""
    return Path(data_dir) / "identity" / "vault.key"


def public_base_url(ctx: ServiceContext) -> str:
    """The service's public URL (status lists, schemas): an option, else from suite.json."""
    configured = ctx.options.get("base_url")
    if isinstance(configured, str):
        return configured.rstrip("/")
    try:
        chain_url = SuiteHome(Path(ctx.data_dir)).api_url()
    except ChainError:
        return DEFAULT_BASE_URL
    return chain_url.removesuffix("/chain").rstrip("/") + f"/{ctx.name}"


def build_env(ctx: ServiceContext) -> Runtime:
    key = load_or_create_key(vault_key_path(ctx.data_dir))
    return Runtime(
        ctx=ctx,
        vault=Vault(key, ctx.ledger.genesis.crypto),
        base_url=public_base_url(ctx),
        entry_order_key=entry_order_key(key),
    )


def create_app(ctx: ServiceContext) -> FastAPI:
    """Build the app: its own tables, the vault, the chain gateway, and the routes."""
    metadata = MetaData()
    for model in TABLES:
        cast(Table, model.__table__).to_metadata(metadata)
    _engine, factory = make_session_factory(ctx.database_url, metadata)
    env = build_env(ctx)
    app = FastAPI(
        title="smartcity identity",
        version="1",
        description="DIDs (did:smartcity), governance-admitted issuers, VC-JOSE and SD-JWT"
        " credentials anchored on the chain, Bitstring Status List, ZK predicates.",
    )
    install_error_handlers(app)
    install_openapi(app, audience=ctx.name)
    # On a remote node bearer keys resolve through the chain reads kept until the next block
    chain = env.chain
    auth = (
        authenticator(ctx.ledger, ctx.name)
        if chain.cache is None
        else authenticator(
            ctx.ledger, ctx.name, resolve=chain.resolve_key, resolve_kept=chain.resolve_kept_key
        )
    )
    app.include_router(build_router(env, auth, session_dependency(factory)))
    app.add_middleware(BodyCeiling, max_bytes=MAX_BODY_BYTES)
    app.state.env = env
    app.state.sessions = factory
    if env.chain.feed is not None:
        ctx.on_close(env.chain.feed.stop)
    app.router.on_shutdown.append(ctx.close)
    return app
