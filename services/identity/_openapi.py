"""What the identity OpenAPI document declares beyond the routes: bearer auth, the error model.

Every route needs a bearer JWT (services.common.auth) and every refusal is rendered as
`{"error": {"code", "message", "details"}}` (services.common.errors); the document says so, so
that a generated client or a schema-driven tester expects exactly what the service answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.common.errors import error_body
from services.identity.errors import BadRequest

BEARER = "bearerAuth"


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable reason, e.g. unknown_did")
    message: str = Field(description="what went wrong, for a person")
    details: Any | None = Field(default=None, description="e.g. each schema violation")


class ErrorOut(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("a request that cannot be done (bad cursor, no signing key, ...)"),
    401: _error("missing, malformed, expired, forged or wrong-audience bearer token"),
    403: _error("the caller's organisation lacks the role, or is not the controller/issuer"),
    404: _error("unknown DID, type, credential, challenge or path"),
    405: _error("method not allowed on this path"),
    409: _error("duplicate, replay, or a state the chain refuses"),
    410: _error("the DID is deactivated"),
    422: _error("input that does not parse, or breaks a schema, a key or a data model rule"),
    503: _error("the chain is unavailable, or the service holds no key for the organisation"),
}


def allowed_methods(app: FastAPI, scope: Any) -> list[str]:
    """The methods of every route whose path matches the request's."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] != Match.NONE:
            methods |= set(route.methods or ())
    return sorted(methods)


def known_query_parameters(request: Request) -> None:
    """Refuse query parameters the operation does not declare (`?stauts=` is a typo, not
    a request for everything)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}; this operation takes"
            f" {', '.join(sorted(declared)) or 'none'}",
            code="unknown_query_parameter",
        )


def _query_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names |= {p.alias for p in current.query_params}
        stack.extend(current.dependencies)
    return names


def install_openapi(app: FastAPI) -> None:
    """Declare bearer auth for every operation, and render Starlette's 404/405 as ErrorOut."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_body(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method of the resource, not the first route's only
            response.headers["Allow"] = ", ".join(allowed_methods(app, _r.scope))
        return response

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes,
            )  # fmt: skip
            components = document.setdefault("components", {})
            components.setdefault("securitySchemes", {})[BEARER] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "EdDSA JWT signed by the caller's key registered on the chain,"
                " audience `identity` (`smartcity token --as ORG --audience identity`)",
            }
            document["security"] = [{BEARER: []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
