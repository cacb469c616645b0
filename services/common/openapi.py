"""What each service's OpenAPI document declares beyond its routes: bearer auth, the error model,
and the error statuses each operation can answer.

Every route of a service needs a bearer JWT (services.common.auth) and every refusal is rendered
as `{"error": {"code", "message", "details"}}` (services.common.errors); the documents say so,
so that a generated client or a schema-driven tester (schemathesis) expects exactly what each
service answers. Times in answers are RFC 3339 with an offset (`UtcDatetime`), never naive.

An operation's error statuses come from two places: what its dependencies refuse, read from the
route itself (`route_answers`: the request checks, authentication, a role, parameters or a body),
and the domain errors its code raises, which the route declares (`responses=raises(...)`) and
tests/common/test_openapi_statuses.py holds to the errors its code can really raise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, Union, cast, get_args, get_origin

from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import AfterValidator, BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from chain.bodies import BODY_TOO_LARGE, BoundedBody
from chain.disconnects import client_left, left_before_body
from services.common.chain import ServiceChain
from services.common.errors import ChainRefused, ServiceError, Unprocessable, error_body

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


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


@dataclass(frozen=True)
class Answer:
    """An error status an operation answers for a reason no service error class names."""

    status: int
    description: str


# What a route declares it raises: a service error class, or an answer no class names
Cause = type[ServiceError] | Answer
# What an operation that writes to the chain can meet at the chain's door (chain.errors.TxRejected)
CHAIN_WRITE: tuple[Cause, ...] = (
    Answer(413, "`tx_too_large`: the transaction is over the chain's size limit"),
    Answer(429, "`mempool_full`: the chain is busy; retry after `Retry-After`"),
)
# What an operation's dependencies refuse (route_answers)
UNKNOWN_QUERY = (
    "`unknown_query_parameter`: a query parameter the operation does not take;"
    " `repeated_query_parameter`: a single-valued query parameter given more than once"
)
UNAUTHENTICATED = (
    "`unauthorized`: a missing, malformed, expired, forged or wrong-audience bearer token"
)
NO_ROLE = "`forbidden`: the caller's organisation lacks the role this operation needs"
INVALID = (
    "`invalid_request`: input that does not parse or breaks the request schema;"
    " `nul_character`: a NUL character in a parameter or a JSON string"
)
TOO_LARGE = (
    f"`{BODY_TOO_LARGE}`: a request body over the service's limit (docs/api.md, request sizes)"
)
CHAIN_DOWN = (
    "`chain_unavailable`: the chain cannot be reached (every call resolves the caller's key on it)"
)


def chain_refusals(chain: type[ServiceChain]) -> tuple[type[ServiceError], ...]:
    """The errors a write through a service's chain access can end in: the contract refusals it
    maps to its own errors, and ChainRefused for the others."""
    return (ChainRefused, *dict.fromkeys(chain.refusals.values()))


def raises(*causes: Cause) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` for the errors a route's own code raises: each status with the error
    model, described by what each cause means (an error class's code and docstring)."""
    reasons: dict[int, list[str]] = {}
    for cause in causes:
        status, reason = (
            (cause.status, cause.description)
            if isinstance(cause, Answer)
            else (cause.status, _describe(cause))
        )
        if reason not in reasons.setdefault(status, []):
            reasons[status].append(reason)
    return {status: _error(reasons[status]) for status in sorted(reasons)}


def route_answers(route: APIRoute) -> dict[int, str]:
    """The error statuses a route's dependencies answer, read from the route: the request
    checks (an unknown query parameter), bearer authentication (401, and 503 since the caller's
    key is resolved on the chain), a role (403), parameters or a body that can break their
    schema (422), and a body over the service's limit (413)."""
    calls = _dependency_calls(route.dependant)
    answers: dict[int, str] = {}
    if known_query_parameters in calls:
        answers[400] = UNKNOWN_QUERY
    authenticates = [c for c in calls if getattr(c, "__module__", "") == _AUTH_MODULE]
    if authenticates:
        answers[401] = UNAUTHENTICATED
        answers[503] = CHAIN_DOWN
    if any(getattr(c, "__qualname__", "").startswith(_ROLE_CHECK) for c in authenticates):
        answers[403] = NO_ROLE
    if route.body_field is not None or _has_parameters(route.dependant):
        answers[422] = INVALID
    # Every service app sits behind a BodyCeiling, which refuses a body over the service's limit
    # on any route, one that takes none too (a GET declaring a Content-Length over it)
    answers[413] = TOO_LARGE
    return answers


# How an error class without a docstring of its own is described, by its status
_BY_STATUS = {
    400: "a request that cannot be done",
    403: "not allowed for this caller",
    404: "no such resource",
    409: "conflicts with what is stored or on the chain",
    422: "input the service refuses",
    503: "a dependency is unavailable",
}


def _describe(error: type[ServiceError]) -> str:
    own = error.__dict__.get("__doc__")
    lines = (own or "").strip().splitlines()
    reason = lines[0].rstrip(".") if lines else _BY_STATUS.get(error.status, error.__name__)
    if reason[1:2].islower():  # a sentence, not an acronym such as "JWK"
        reason = reason[0].lower() + reason[1:]
    return f"`{error.code}`: {reason}"


def _error(reasons: list[str]) -> dict[str, Any]:
    return {
        "description": "; ".join(reasons),
        "content": {"application/json": {"schema": ERROR_REF}},
    }


_AUTH_MODULE = "services.common.auth"
_ROLE_CHECK = "require_role."


def _dependency_calls(dependant: Dependant) -> list[Any]:
    calls, stack = [], [dependant]
    while stack:
        current = stack.pop()
        calls.append(current.call)
        stack.extend(current.dependencies)
    return calls


def _has_parameters(dependant: Dependant) -> bool:
    stack = [dependant]
    while stack:
        current = stack.pop()
        if current.path_params or current.query_params or current.header_params:
            return True
        if current.cookie_params or current.body_params:
            return True
        stack.extend(current.dependencies)
    return False


def _document_errors(app: FastAPI, document: dict[str, Any]) -> None:
    """Add each operation's dependency answers to the statuses its route declares."""
    paths = document.get("paths", {})
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        answers = route_answers(cast(APIRoute, context))
        for method in context.methods or ():
            operation = paths.get(context.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, reason in sorted(answers.items()):
                declared = responses.get(str(status))
                if declared is None:
                    responses[str(status)] = _error([reason])
                elif reason not in declared.get("description", ""):
                    declared["description"] = f"{reason}; {declared.get('description', '')}"
            for status in [s for s in responses if s.isdigit() and int(s) >= 400]:
                if status == "422" and "HTTPValidationError" in str(responses[status]):
                    responses[status] = _error([answers.get(422, INVALID)])
            operation["responses"] = dict(sorted(responses.items()))
    if "HTTPValidationError" not in json.dumps(paths):
        for name in ("HTTPValidationError", "ValidationError"):
            document.get("components", {}).get("schemas", {}).pop(name, None)


def allowed_methods(app: FastAPI, scope: Any) -> list[str]:
    """The methods of the request's path item: of the routes whose path matches it, those with
    the fewest parameters (a literal segment is its own path item in the document)."""
    # Routes included from a router sit in FastAPI's include contexts, not in app.router.routes
    by_path: dict[str, set[str]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.matches(scope)[0] != Match.NONE:
            by_path.setdefault(route.path_format, set()).update(context.methods or ())
    if not by_path:
        return []
    # The document's path item for the request: `/smes/batch` itself, not `/smes/{uscc}`
    fewest = min(path.count("{") for path in by_path)
    return sorted(set().union(*(m for p, m in by_path.items() if p.count("{") == fewest)))


async def known_query_parameters(request: Request) -> None:
    """Refuse query parameters the operation does not declare (`?stauts=` is a typo, not
    a request for everything), and a single-valued one given twice (`?limit=1&limit=500`:
    which one a server takes is its whim, so the caller is told instead)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _query_names(route)
    given = request.query_params
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ServiceError(
            f"unknown query parameter {unknown[0]!r}; this operation takes"
            f" {', '.join(sorted(declared)) or 'none'}",
            code="unknown_query_parameter",
        )
    repeated = sorted(n for n in set(given) if not declared[n] and len(given.getlist(n)) > 1)
    if repeated:
        name = repeated[0]
        raise ServiceError(
            f"query parameter {name!r} is given {len(given.getlist(name))} times;"
            " this operation takes one value",
            code="repeated_query_parameter",
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
    # A route reading its raw body bounds it by its own limit, so this read does too (else the
    # app's BodyCeiling bounds it)
    own = _bounded_body(request.scope.get("route"))
    body = await own(request) if own is not None else await request.body()
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


_QUERY_NAMES = "_smartcity_query_names"  # the attribute _query_names keeps them in
_BOUNDED_BODY = "_smartcity_bounded_body"  # the attribute _bounded_body keeps it in


def _bounded_body(route: Any) -> BoundedBody | None:
    """The route's own bounded raw-body dependency, if it has one (found once, kept on it)."""
    if not isinstance(route, APIRoute):
        return None
    if not hasattr(route, _BOUNDED_BODY):
        calls = _dependency_calls(route.dependant)
        found = next((c for c in calls if isinstance(c, BoundedBody)), None)
        setattr(route, _BOUNDED_BODY, found)
    return cast(BoundedBody | None, getattr(route, _BOUNDED_BODY))


def _query_names(route: APIRoute) -> dict[str, bool]:
    """The operation's query parameters, each with whether it takes several values: read from
    its dependants once and kept on the route (APIRoute is not hashable), not at every request."""
    known: dict[str, bool] | None = getattr(route, _QUERY_NAMES, None)
    if known is None:
        known = _read_query_names(route.dependant)
        setattr(route, _QUERY_NAMES, known)
    return known


def _read_query_names(dependant: Dependant) -> dict[str, bool]:
    names: dict[str, bool] = {}
    stack = [dependant]
    while stack:
        current = stack.pop()
        names |= {p.alias: _repeatable(p.field_info.annotation) for p in current.query_params}
        stack.extend(current.dependencies)
    return names


def _repeatable(annotation: Any) -> bool:
    """A list, set or tuple (or an optional one) takes a query parameter given many times."""
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_repeatable(a) for a in get_args(annotation) if a is not type(None))
    return (origin or annotation) in (list, set, frozenset, tuple)


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
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if left_before_body(exc):
            return client_left(request)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_body(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method of the resource, not the first route's only
            response.headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return response

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = document.setdefault("components", {})
            components.setdefault("securitySchemes", {})[BEARER] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "EdDSA JWT signed by the caller's key registered on the chain,"
                f" audience `{audience}` (`smartcity token --as ORG --audience {audience}`)",
            }
            document["security"] = [{BEARER: []}]
            _document_errors(app, document)
            schemas = components.setdefault("schemas", {})
            error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(error_schema.pop("$defs", {}))
            schemas["ErrorOut"] = error_schema
            _errors_as_json(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
