"""What the node's OpenAPI document says beyond its routes: the error envelope, bearer auth on
reads, the request bodies the node reads raw, and every error status each operation answers.

Every refusal of the node is `{"error": {"code", "message"}}` (docs/protocol.md §4 and §16),
FastAPI's own validation and Starlette's 404/405 included, so that a generated client or a
schema-driven tester (schemathesis) expects exactly what the node answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor

from chain.bodies import BODY_TOO_LARGE
from chain.reads import MAX_READ_BODY_BYTES, MAX_READ_KEYS, MAX_READ_VALUE_BYTES
from chain.state import MAX_KEY_CHARS
from chain.tx import MAX_NONCE

BEARER = "bearerAuth"
MAX_BATCH = 10_000
MAX_BATCH_BYTES = 32 * 1024 * 1024


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable reason (docs/protocol.md §4)")
    message: str = Field(description="what went wrong, for a person")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the node: {"error": {"code", "message"}} (docs/protocol.md §4)."""

    error: ErrorDetail


def _hex(size: int) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^[0-9a-f]{{{2 * size}}}$"}


_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_NONCE}
# A signed transaction as POST /v1/txs reads it (docs/protocol.md §3)
TX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "chain_id",
        "sender",
        "contract",
        "method",
        "args",
        "nonce",
        "expiry_height",
        "sig",
    ],
    "additionalProperties": False,
    "properties": {
        "chain_id": {"type": "string"},
        "sender": _hex(32),
        "contract": _NAME,
        "method": _NAME,
        "args": {"type": "object"},
        "nonce": _COUNT,
        "expiry_height": _COUNT,
        "sig": _hex(64),
    },
}

BUNDLE: dict[str, Any] = {"type": "object", "description": "a proof bundle (docs/protocol.md §12)"}
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["txs"],
    "properties": {
        "txs": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            # Each item is checked on its own: a malformed one is rejected in its result
            "items": {"description": "a signed transaction (docs/protocol.md §3)"},
        }
    },
}
# What POST /v1/txs answers, in the order the node checks (docs/protocol.md §4)
TX_ERRORS = {
    400: "not a well-formed transaction, another chain's, expired or expiring too far ahead, an"
    " unknown contract or method, or arguments its method refuses (the code says which)",
    401: "the signature does not verify (`bad_signature`)",
    403: "the sender is not an active key of an active organisation (`unknown_sender`)",
    409: "the transaction is already committed (`tx_replayed`)",
    413: "over 65,536 bytes, raw or canonical (`tx_too_large`)",
    429: "the mempool is full (`mempool_full`): retry after `Retry-After`",
    503: "the node's database is unavailable (`storage_unavailable`, `Retry-After: 1`)",
    504: "with `wait=true`: admitted but not committed within `timeout_s` (`commit_timeout`)",
}
STATE_ERRORS = {
    400: "a namespace that is not a contract name, or a key that is not 1-256 printable"
    " characters: no contract can write it (`bad_key`)",
    409: "no block committed yet (`no_proof`)",
}
# POST /v1/state/{namespace}/read: keys in, values out (chain/reads.py)
READ_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["keys"],
    "additionalProperties": False,
    "properties": {
        "keys": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_READ_KEYS,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
        }
    },
}
READ_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["height", "values"],
    "additionalProperties": False,
    "properties": {
        "height": {"type": "integer", "minimum": 0},
        "values": {
            "type": "array",
            "description": "the first keys' values in order (null: absent), as many as fit in"
            f" {MAX_READ_VALUE_BYTES} bytes (at least one): ask again for the rest",
        },
    },
}
READ_ERRORS = {
    400: "a namespace that is not a contract name or a key no contract can write (`bad_key`,"
    f" naming the key's place), over {MAX_READ_KEYS} keys (`too_many_keys`), or not"
    f' {{"keys": [1..{MAX_READ_KEYS} strings]}} (`read_malformed`)',
    413: f"a body over {MAX_READ_BODY_BYTES} bytes (`read_too_large`)",
}
BATCH_ERRORS = {
    400: 'not JSON, or not {"txs": [1..10,000 transactions]} (`tx_malformed`)',
    413: "a body over 32 MiB (`batch_too_large`)",
    429: "the mempool is full (`mempool_full`): nothing admitted, retry the whole batch",
    503: "the node's database is unavailable (`storage_unavailable`, `Retry-After: 1`)",
}


class StateKey(Convertor[str]):
    """A state key in a path: anything, `/` and line breaks included, so that the node answers
    an unwritable key with its reason rather than a route's 404."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("state_key", StateKey())


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body the route reads raw."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def errors(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses` declaring each status with the error envelope and when it happens."""
    return {s: {"model": ErrorBody, "description": why} for s, why in sorted(statuses.items())}


# What a read (a route taking the bearer token) may answer beyond its own statuses
TOKEN_ERRORS = {
    401: "missing, malformed, expired or forged bearer token, or one whose key is not an active"
    " key of a registered organisation (`unauthorized`, with `WWW-Authenticate: Bearer`)",
    503: "the node's database is unavailable (`storage_unavailable`, `Retry-After: 1`)",
}
INVALID_QUERY = {422: "a query or path parameter that breaks its schema (`invalid_request`)"}
# What every route answers to a body over the node's ceiling (chain.bodies.BodyCeiling), a route
# that takes no body too: one declaring a Content-Length over it is refused before it is read
CEILING = {413: f"a request body over {MAX_BATCH_BYTES} bytes (`{BODY_TOO_LARGE}`)"}


def install_document(app: FastAPI, *, reader: Callable[..., Any] | None) -> None:
    """Generate the document once: bearer auth declared on the routes that depend on `reader`
    (none when reads are public), FastAPI's own 422 rendered with the envelope."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        document.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "EdDSA JWT signed by an active key of a registered organisation,"
            " audience `chain` (`smartcity token --as ORG --audience chain`)",
        }
        secured = {
            r.path_format for r in app.routes if isinstance(r, APIRoute) and _uses(r, reader)
        }
        schemas = document["components"].get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                operation["security"] = [{BEARER: []}] if path in secured else []
                responses = operation.setdefault("responses", {})
                if "422" in responses:  # FastAPI's own, in the error envelope
                    responses["422"] = _error_response(INVALID_QUERY[422])
                responses.setdefault("413", _error_response(CEILING[413]))
                operation["responses"] = dict(sorted(responses.items()))
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _error_response(why: str) -> dict[str, Any]:
    """An error status of the document: `why`, with the error envelope."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": why, "content": {"application/json": {"schema": schema}}}


def _uses(route: APIRoute, dependency: Callable[..., Any] | None) -> bool:
    if dependency is None:
        return False
    stack = [route.dependant]
    while stack:
        current = stack.pop()
        if current.call is dependency:
            return True
        stack.extend(current.dependencies)
    return False
