"""What each service's OpenAPI document declares beyond its routes: bearer auth, the error model.

Every route of a service needs a bearer JWT (services.common.auth) and every refusal is rendered
as `{"error": {"code", "message", "details"}}` (services.common.errors); the documents say so,
so that a generated client or a schema-driven tester (schemathesis) expects exactly what each
service answers. Times in answers are RFC 3339 with an offset (`UtcDatetime`), never naive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.common.errors import ServiceError, Unprocessable, error_body

BEARER = "bearerAuth"
NUL_CODE = "nul_character"


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive one (as SQLite hands it back) is the UTC it was stored as."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# A time in an answer: always with its offset (`...Z`), whatever the database handed back
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable reason, e.g. unknown_did")
    message: str = Field(description="what went wrong, for a person")
    details: Any | None = Field(default=None, description="e.g. each schema violation")


class ErrorOut(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorDetail


# What every service may answer on any operation, whatever its domain
COMMON_ERRORS: Mapping[int, str] = {
    401: "missing, malformed, expired, forged or wrong-audience bearer token",
    403: "the caller's organisation lacks the role for this operation",
    404: "no such resource, or no such path",
    405: "method not allowed on this path",
    422: "input that does not parse or breaks the request schema",
    503: "the chain is unavailable",
}


def error_responses(descriptions: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` declaring each status with the error model: the common statuses,
    with `descriptions` adding statuses or saying more about one."""
    merged = {**COMMON_ERRORS, **descriptions}
    return {status: {"model": ErrorOut, "description": merged[status]} for status in sorted(merged)}


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
        raise ServiceError(
            f"unknown query parameter {unknown[0]!r}; this operation takes"
            f" {', '.join(sorted(declared)) or 'none'}",
            code="unknown_query_parameter",
        )


async def refuse_nul_characters(request: Request) -> None:
    """Refuse a NUL character in a path or query parameter or a JSON string: no identifier or
    text of the services holds one, and PostgreSQL cannot store one (it would answer 500)."""
    for where, values in (("path", request.path_params), ("query", request.query_params)):
        for name, value in values.items():
            if "\x00" in str(value):
                raise Unprocessable(f"{where}.{name}: contains a NUL character", code=NUL_CODE)
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    # Cheap in the usual case: only a body with the escape sequence is parsed and walked
    if b"\\u0000" in body:
        try:
            document = json.loads(body)
        except ValueError:
            return  # the body's own validation answers 422
        if _holds_nul(document):
            raise Unprocessable("body: a string contains a NUL character", code=NUL_CODE)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _query_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names |= {p.alias for p in current.query_params}
        stack.extend(current.dependencies)
    return names


def _errors_as_json(document: dict[str, Any]) -> None:
    """Declare the error model as application/json: FastAPI files it under the route's own
    media type (e.g. application/geo+json), but `error_body` always answers JSON."""
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if not str(status).isdigit() or int(status) < 400:
                    continue
                for media in [m for m, c in content.items() if c.get("schema") == error_ref]:
                    content["application/json"] = content.pop(media)


# The checks every service's router runs before an operation (`APIRouter(dependencies=...)`)
REQUEST_CHECKS = [Depends(known_query_parameters), Depends(refuse_nul_characters)]


def install_openapi(app: FastAPI, *, audience: str) -> None:
    """Declare bearer auth (a JWT for `audience`) for every operation, and render Starlette's
    own 404/405 with the error model."""

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
                f" audience `{audience}` (`smartcity token --as ORG --audience {audience}`)",
            }
            document["security"] = [{BEARER: []}]
            _errors_as_json(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
