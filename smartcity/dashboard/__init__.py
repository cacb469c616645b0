"""The dashboard: a static single-page app for people, served at `/` of the suite.

The page is plain HTML/CSS/JS (no build step, no external assets) under `static/`. It calls the
suite's own APIs (/chain, /identity, /credit, /roadhealth) with bearer tokens. Two helper
endpoints live under /dashboard/api:

- `GET /dashboard/api/token?org=...&audience=...`: in demo mode only, and only to a request
  whose Host is loopback or the suite's own public host (no DNS rebinding), a short-lived token
  for one of the demo organisations whose key the suite folder holds (see docs/dashboard.md for
  why this is acceptable in a demo and refused otherwise);
- `POST /dashboard/api/verify`: checks a proof bundle against the suite's genesis with
  chain.light.verify_bundle and says what it proves (a sentence and its particulars,
  smartcity.proofs) or why it fails;
- `GET /dashboard/api/anchors`, `/lookup/{hash}`: what the node API has no
  index for (recent anchor batches, what a hash names), read from the
  node's block store for a caller with a `chain` token (see explore.py).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from chain.auth import AUDIENCE_CHAIN, AuthError, Caller, mint_token, verify_token
from chain.errors import ChainError, ProofError
from chain.genesis import Genesis
from chain.home import SuiteHome
from chain.ledger import Ledger
from chain.light import verify_bundle
from smartcity.dashboard import explore
from smartcity.proofs import explain

if TYPE_CHECKING:
    from smartcity.composition import Suite

STATIC = Path(__file__).parent / "static"
DEMO_MARKER = Path("dashboard") / "demo-mode"
TOKEN_TTL_S = 300
HEX64 = r"^[0-9a-f]{64}$"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# RFC 9110 §7.2: Host = uri-host [ ":" port ]; a name, an IPv4 address or a bracketed IPv6 one
_HOST_HEADER = re.compile(
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]{2,45})\]|(?P<name>[A-Za-z0-9._-]{1,253}))(?::(?P<port>[0-9]{1,5}))?"
)


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


def host_of(header: str) -> str | None:
    """The host a Host header names, in canonical form (lower case; IPv6 compressed), or None
    when the header is not a host with an optional port."""
    match = _HOST_HEADER.fullmatch(header)
    if match is None or (match["port"] is not None and int(match["port"]) > 65535):
        return None
    if match["ipv6"] is not None:
        try:
            return ipaddress.IPv6Address(match["ipv6"]).compressed
        except ValueError:
            return None
    return match["name"].lower()


def public_host(data: Path) -> str | None:
    """The host of the suite's configured public URL (suite.json's api_url), if there is one."""
    try:
        return host_of(urlsplit(SuiteHome(data).api_url()).netloc.rpartition("@")[2])
    except (ChainError, KeyError, ValueError, OSError):
        return None


def is_trusted_host(header: str | None, public: str | None) -> bool:
    """A request the demo minter may answer: addressed to a loopback host or the suite's own
    public host. Anything else may be a page on another site whose name was rebound to this
    address (DNS rebinding), which must not get tokens."""
    host = host_of(header or "")
    return host is not None and (host in LOOPBACK_HOSTS or host == public)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": None}}, status)


def chain_reader(request: Request) -> Caller:
    """The caller of an explorer read: a bearer token for the `chain` audience, as /chain asks."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("missing bearer token: mint one with `smartcity token`")
    ledger: Ledger = request.app.state.ledger
    return verify_token(token.strip(), audience=AUDIENCE_CHAIN, resolve=ledger.resolve_key)


# Module level: this module postpones annotations, so FastAPI resolves them in its globals
ChainReader = Annotated[Caller, Depends(chain_reader)]


def mount_dashboard(app: FastAPI, suite: Suite) -> None:
    """Serve the dashboard at `/` (ahead of any other `/` route) and its API at /dashboard."""
    if suite.created:
        mark_demo(suite.data)
    sub = create_dashboard_app(
        data=suite.data,
        genesis=suite.node.ledger.genesis,
        audiences=[AUDIENCE_CHAIN, *suite.services],
        ledger=suite.node.ledger,
    )
    app.mount("/dashboard", sub)

    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    # First in the table, so it wins over the suite's redirect to the chain's OpenAPI page
    app.router.routes.insert(0, APIRoute("/", index, include_in_schema=False, methods=["GET"]))


def create_dashboard_app(
    *, data: Path, genesis: Genesis, audiences: list[str], ledger: Ledger | None = None
) -> FastAPI:
    app = FastAPI(title="smartcity dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    orgs = {o.id: o for o in genesis.organisations}
    public = public_host(data)
    trusted = LOOPBACK_HOSTS | ({public} if public else set())
    allowed = ", ".join(f"[{h}]" if ":" in h else h for h in sorted(trusted))

    @app.exception_handler(AuthError)
    async def refused(_request: Request, exc: AuthError) -> JSONResponse:
        response = _error(exc.status, "unauthorised", exc.message)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ["request"], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return _error(422, "invalid_request", f"{where}: {first['msg']}")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        """What the page needs to start: the chain, the demo organisations, the services."""
        return {
            "chain_id": genesis.chain_id,
            "genesis_hash": genesis.hash,
            "demo": is_demo(data),
            "services": audiences,
            "orgs": [{"id": o.id, "name": o.name, "roles": list(o.roles)} for o in orgs.values()],
            "observers": [{"name": o.name, "pub_key": o.pub_key} for o in genesis.observers],
        }

    @app.get("/api/token", response_model=None)
    def token(
        request: Request,
        org: Annotated[str, Query(max_length=64)],
        audience: Annotated[str, Query(max_length=64)],
    ) -> dict[str, Any] | JSONResponse:
        """A 5-minute bearer token for a demo organisation (demo mode, trusted hosts only)."""
        # Verify the suite runs in demo mode
        if not is_demo(data):
            return _error(
                403,
                "not_demo",
                "the dashboard mints tokens only in demo mode (a data folder created by "
                "`smartcity up`); paste a token from `smartcity token` instead",
            )
        # Verify the request is addressed to this machine or the suite's public host
        if not is_trusted_host(request.headers.get("host"), public):
            return _error(
                403,
                "untrusted_host",
                f"the demo token minter answers only requests addressed to {allowed} (any port),"
                " not to the Host this request names: another site's name pointed at this"
                " address (DNS rebinding) must not get tokens",
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
            **explain(bundle, proven, genesis).as_json(),
            "facts": proven.facts,
        }

    if ledger is not None:
        _mount_explorer(app, ledger, list(orgs))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _mount_explorer(app: FastAPI, ledger: Ledger, orgs: list[str]) -> None:
    """The explorer's reads the node API has no index for; a `chain` token is required."""

    app.state.ledger = ledger

    @app.get("/api/anchors")
    def anchors(
        _caller: ChainReader,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        org: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """The newest anchor batches, optionally of one organisation."""
        return {"anchors": explore.recent_anchors(ledger, limit=limit, org=org)}

    @app.get("/api/lookup/{digest}", response_model=None)
    def lookup(
        _caller: ChainReader, digest: Annotated[str, PathParam(pattern=HEX64)]
    ) -> dict[str, Any] | JSONResponse:
        """What a 64-hex hash names here: a transaction, a block, an anchored root or credential."""
        found = explore.lookup(ledger, digest, orgs)
        if found is None:
            return _error(
                404, "not_found", f"{digest} is no transaction, block, anchored root or credential"
            )
        return {"kind": found.kind, **found.detail}
