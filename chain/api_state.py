"""The node API's state reads: one key with its proof, or many keys' values in one request."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from chain.api_doc import (
    BUNDLE,
    READ_ERRORS,
    READ_RESULT,
    READ_SCHEMA,
    STATE_ERRORS,
    TOKEN_ERRORS,
    errors,
    json_body,
)
from chain.auth import Caller
from chain.bodies import read_body
from chain.json_types import JsonObject
from chain.ledger import Ledger
from chain.reads import (
    MAX_READ_BODY_BYTES,
    check_state_key,
    encode_read,
    parse_read,
    read_keys,
    read_too_large,
)

Reader = Callable[[Request], Coroutine[Any, Any, Caller | None]]


def install_state_reads(app: FastAPI, ledger: Ledger, reader: Reader) -> None:
    """Add the state routes to the node's `app`; each authenticates its caller with `reader`,
    as every other read does. (No `from __future__ import annotations` here: FastAPI reads the
    routes' annotations, and `Authenticated` is local to this function.)"""
    Authenticated = Annotated[Caller | None, Depends(reader)]

    @app.post(
        "/v1/state/{namespace}/read",
        response_model=None,  # the answer is encoded as it is read (chain.reads.encode_read)
        responses={
            200: {
                "content": {"application/json": {"schema": READ_RESULT}},
                "description": "the values at one committed height",
            },
            **errors({**TOKEN_ERRORS, **READ_ERRORS}),
        },
        openapi_extra=json_body(READ_SCHEMA),
    )
    async def read_state(namespace: str, request: Request, _caller: Authenticated) -> Response:
        """Many keys' values (null where absent) at one committed height, without proofs."""
        keys = parse_read(await read_body(request, MAX_READ_BODY_BYTES, read_too_large))
        body = await run_in_threadpool(lambda: encode_read(read_keys(ledger, namespace, keys)))
        return Response(body, media_type="application/json")

    @app.get(
        "/v1/state/{namespace}/{key:state_key}",
        response_model=None,  # the bundle is passed through as the ledger built it
        responses={
            200: {"content": {"application/json": {"schema": BUNDLE}}, "description": "the bundle"},
            **errors({**TOKEN_ERRORS, **STATE_ERRORS}),
        },
    )
    def get_state(namespace: str, key: str, _caller: Authenticated) -> JsonObject:
        """A state value with its proof, or a proof that the key is absent."""
        check_state_key(namespace, key)
        return ledger.state_proof(namespace, key)
