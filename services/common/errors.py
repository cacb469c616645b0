"""The services' shared error root and the one handler that maps it to HTTP.

    ServiceError                 status 400 unless a subclass says otherwise
    ├── NotFound                 404
    ├── Conflict                 409
    │   ├── AlreadyExists        409 already_exists (or the contract's code)
    │   └── ChainRefused         409 chain_refused: the chain refused a transaction (its code)
    ├── Unprocessable            422 (input that parses but is not acceptable)
    ├── Forbidden                403
    └── Upstream                 502/503 (the chain or another dependency failed)

Each service draws its own root beside these; the shared branches above are raised as they are
by every service (its errors module re-exports them). Domain code raises these (never
HTTPException); `install_error_handlers` renders every one as
`{"error": {"code", "message", "details"}}`, as the chain node does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chain.auth import AuthError
from chain.errors import ChainError, TxRejected

if TYPE_CHECKING:
    # FastAPI is imported where a response is made, not here: the error classes are raised by
    # pure code too (road health's analytics and wire format) that must stay light to import
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class AlreadyExists(Conflict):
    """What is being created already exists (a DID, a type, an SME, a model, ...)."""

    code = "already_exists"


class ChainRefused(Conflict):
    """The chain refused a transaction; `code` is the contract's."""

    code = "chain_refused"


class Unprocessable(ServiceError):
    status, code = 422, "unprocessable"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class Upstream(ServiceError):
    status, code = 503, "upstream_unavailable"


def error_body(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    from fastapi.responses import JSONResponse

    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Map the service, auth, chain and validation errors to one JSON shape."""
    from fastapi.exceptions import RequestValidationError

    from chain.disconnects import install_disconnect_handler

    @app.exception_handler(ServiceError)
    async def service_error(_r: Request, exc: ServiceError) -> JSONResponse:
        return error_body(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(AuthError)
    async def auth_error(_r: Request, exc: AuthError) -> JSONResponse:
        response = error_body(
            exc.status, "unauthorized" if exc.status == 401 else "forbidden", exc.message
        )
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(TxRejected)
    async def rejected(_r: Request, exc: TxRejected) -> JSONResponse:
        response = error_body(exc.status, exc.code, exc.message)
        if exc.status in (429, 503):  # the chain is pushing back: say when to come again
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(ChainError)
    async def chain_error(_r: Request, exc: ChainError) -> JSONResponse:
        return error_body(503, "chain_unavailable", str(exc))

    install_disconnect_handler(app)

    @app.exception_handler(RecursionError)
    async def too_deep(_r: Request, _exc: RecursionError) -> JSONResponse:
        # only input nests this deep: a body or token of thousands of nested arrays
        return error_body(400, "too_deeply_nested", "the request nests too deeply")

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        first = problems[0] if problems else {"where": "body", "problem": "invalid"}
        return error_body(422, "invalid_request", f"{first['where']}: {first['problem']}", problems)
