"""The dashboard: a static single-page app for people, served at `/` of the suite.

The page is plain HTML/CSS/JS (no build step, no external assets) under `static/`. It calls the
suite's own APIs (/chain, /identity, /credit, /roadhealth) with bearer tokens. Two helper
endpoints live under /dashboard/api:

- `GET /dashboard/api/token?org=...&audience=...`: in demo mode only, a short-lived token for
  one of the demo organisations whose key the suite folder holds (see docs/dashboard.md for
  why this is acceptable in a demo and refused otherwise);
- `POST /dashboard/api/verify`: checks a proof bundle against the suite's genesis with
  chain.light.verify_bundle and says what it proves or why it fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from chain.auth import AUDIENCE_CHAIN, mint_token
from chain.errors import ChainError, ProofError
from chain.genesis import Genesis
from chain.home import SuiteHome
from chain.light import verify_bundle

if TYPE_CHECKING:
    from smartcity.suite import Suite

STATIC = Path(__file__).parent / "static"
DEMO_MARKER = Path("dashboard") / "demo-mode"
TOKEN_TTL_S = 300


def is_demo(data: Path) -> bool:
    """Demo mode: the data folder was created by the suite itself (`smartcity up`)."""
    return (data / DEMO_MARKER).is_file()


def mark_demo(data: Path) -> None:
    marker = data / DEMO_MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(
        "This folder was created by `smartcity up`: the dashboard may mint tokens for the demo\n"
        "organisations whose keys it holds. Delete this file to turn that off.\n"
    )


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": None}}, status)


def mount_dashboard(app: FastAPI, suite: Suite) -> None:
    """Serve the dashboard at `/` (ahead of any other `/` route) and its API at /dashboard."""
    if suite.created:
        mark_demo(suite.data)
    sub = create_dashboard_app(
        data=suite.data,
        genesis=suite.node.ledger.genesis,
        audiences=[AUDIENCE_CHAIN, *suite.services],
    )
    app.mount("/dashboard", sub)

    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    # First in the table, so it wins over the suite's redirect to the chain's OpenAPI page
    app.router.routes.insert(0, APIRoute("/", index, include_in_schema=False, methods=["GET"]))


def create_dashboard_app(*, data: Path, genesis: Genesis, audiences: list[str]) -> FastAPI:
    app = FastAPI(title="smartcity dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    orgs = {o.id: o for o in genesis.organisations}

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        """What the page needs to start: the chain, the demo organisations, the services."""
        return {
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash,
            "demo": is_demo(data),
            "services": audiences,
            "orgs": [{"id": o.id, "name": o.name, "roles": list(o.roles)} for o in orgs.values()],
        }

    @app.get("/api/token", response_model=None)
    def token(
        org: Annotated[str, Query(max_length=64)],
        audience: Annotated[str, Query(max_length=64)],
    ) -> dict[str, Any] | JSONResponse:
        """A 5-minute bearer token for a demo organisation (demo mode only)."""
        # Verify the suite runs in demo mode
        if not is_demo(data):
            return _error(
                403,
                "not_demo",
                "the dashboard mints tokens only in demo mode (a data folder created by "
                "`smartcity up`); paste a token from `smartcity token` instead",
            )
        # Verify the organisation and the audience are known
        if org not in orgs:
            return _error(404, "unknown_org", f"no organisation {org!r} in genesis")
        if audience not in audiences:
            return _error(422, "unknown_audience", f"audience must be one of {audiences}")
        try:
            key = SuiteHome(data).org_key(org)
        except ChainError as exc:
            return _error(404, "no_key", str(exc))
        jwt = mint_token(key, org=org, audience=audience, ttl_s=TOKEN_TTL_S)
        return {"token": jwt, "org": org, "audience": audience, "expires_in": TOKEN_TTL_S}

    @app.post("/api/verify", response_model=None)
    def verify(bundle: Annotated[Any, Body()]) -> dict[str, Any] | JSONResponse:
        """Verify a proof bundle against this suite's genesis, offline (no node state used)."""
        try:
            proven = verify_bundle(bundle, genesis)
        except ProofError as exc:
            return JSONResponse({"verified": False, "reason": str(exc)}, 200)
        return {
            "verified": True,
            "kind": proven.kind,
            "height": proven.height,
            "block_hash": proven.block_hash,
            "summary": proven.summary,
            "facts": proven.facts,
        }

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
