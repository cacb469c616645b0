"""The node's HTTP API (FastAPI): submit transactions, read blocks, receipts, state and proofs."""

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from chain.api_doc import (
    BATCH_ERRORS,
    BATCH_SCHEMA,
    BUNDLE,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    TOKEN_ERRORS,
    TX_ERRORS,
    TX_SCHEMA,
    errors,
    install_document,
    json_body,
)
from chain.api_state import install_state_reads
from chain.auth import AUDIENCE_CHAIN as AUDIENCE
from chain.auth import AuthError, Caller, VerifiedTokens, verify_token
from chain.block import Certificate, Header, Receipt
from chain.bodies import BodyCeiling, read_body
from chain.disconnects import install_disconnect_handler
from chain.encoding import parse_json
from chain.errors import ChainError, EncodingError, ProofError, StorageError, TxRejected
from chain.json_types import JsonObject
from chain.node import Node, block_message
from chain.tx import MAX_TX_BYTES, Tx, decode_tx, tx_from_json, verify_signatures


class EventJson(BaseModel):
    contract: str
    name: str
    data: JsonObject


class ReceiptJson(BaseModel):
    """A transaction's outcome in its block (chain.block.Receipt)."""

    tx: str
    height: int
    index: int
    status: Literal["ok", "failed"]
    code: str | None
    error: str | None
    events: list[EventJson]


class TxJson(BaseModel):
    """A signed transaction as submitted (chain.tx.Tx)."""

    chain_id: str
    sender: str
    contract: str
    method: str
    args: JsonObject
    nonce: int
    expiry_height: int
    sig: str


class Submitted(BaseModel):
    hash: str
    status: str
    receipt: ReceiptJson | None = None


class BatchItem(BaseModel):
    hash: str | None
    status: str
    code: str | None = None
    message: str | None = None
    # A rejected item's HTTP status, as `POST /v1/txs` would have answered it alone
    http_status: int | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItem]


class TxInfo(BaseModel):
    hash: str
    status: str
    height: int | None = None
    tx: TxJson | None = None
    receipt: ReceiptJson | None = None


class BlockInfo(BaseModel):
    hash: str
    header: Header  # its canonical JSON is what the block hash covers
    certificate: Certificate
    txs: list[str]


class EvidenceList(BaseModel):
    evidence: list[JsonObject]  # newest first (chain.consensus.evidence)


class ValidatorsInfo(BaseModel):
    height: int
    validators: list[JsonObject]  # the governance contract's validator records


class Status(BaseModel):
    chain_id: str
    genesis_hash: str
    height: int
    latest_hash: str | None
    latest_time_ms: int | None
    state_root: str
    mempool: int
    role: str
    node_key: str | None
    healthy: bool


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _status_of(exc: ChainError) -> tuple[int, str]:
    if isinstance(exc, TxRejected):
        return exc.status, exc.code
    if isinstance(exc, AuthError):
        return exc.status, "unauthorized" if exc.status == 401 else "forbidden"
    if isinstance(exc, ProofError):
        return 409, "no_proof"
    if isinstance(exc, StorageError):
        return 503, "storage_unavailable"
    return 400, "chain_error"


def create_app(node: Node, *, public_reads: bool = False) -> FastAPI:
    """The node API; reads need a member's bearer token unless `public_reads`."""
    app = FastAPI(
        title="smartcity chain node",
        version="1",
        description="Submit transactions; read blocks, receipts, state and verifiable proofs.",
    )
    ledger = node.ledger
    genesis_hash = ledger.genesis.hash  # a canonical encoding and hash: once, not per status

    @app.exception_handler(ChainError)
    async def chain_error(_request: Request, exc: ChainError) -> JSONResponse:
        status, code = _status_of(exc)
        message = exc.message if isinstance(exc, TxRejected | AuthError) else str(exc)
        response = error_response(status, code, message)
        if status in (429, 503):
            response.headers["Retry-After"] = "1"
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    install_disconnect_handler(app)

    @app.exception_handler(RecursionError)
    async def too_deep(_request: Request, _exc: RecursionError) -> JSONResponse:
        # only input nests this deep: a body or token of thousands of nested arrays
        return error_response(400, "too_deeply_nested", "the request nests too deeply")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("request",), "msg": "invalid"}
        where = ".".join(str(part) for part in first["loc"])
        return error_response(422, "invalid_request", f"{where}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    # A client reuses its token for many requests (a follower polls the status every few
    # milliseconds): its signature is checked once, every other check on every request
    verified = VerifiedTokens()

    # async: it reads memory only, so it runs on the event loop instead of a worker thread
    # (each sync dependency and handler is a thread hop: a status request cost 1.0 ms of CPU)
    async def reader(request: Request) -> Caller | None:
        if public_reads:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("missing bearer token: mint one with `smartcity token`")
        return verify_token(
            token.strip(), audience=AUDIENCE, resolve=ledger.resolve_key, verified=verified
        )

    Reader = Annotated[Caller | None, Depends(reader)]

    @app.post(
        "/v1/txs",
        status_code=202,
        response_model=Submitted,
        responses={
            200: {
                "model": Submitted,
                "description": "with `wait=true`: committed, with its receipt",
            },
            **errors(TX_ERRORS),
        },
        openapi_extra=json_body(TX_SCHEMA),
    )
    async def submit(
        request: Request,
        wait: bool = False,
        timeout_s: Annotated[float, Query(gt=0, le=120)] = 30,
    ) -> Submitted | JSONResponse:
        """Admit a signed transaction; with `wait=true`, answer when it commits."""
        if not wait:
            node.check_admission()  # refused before the body is read; waiters: by node.submit
        raw = await read_body(request, MAX_TX_BYTES, _tx_too_large)
        tx = decode_tx(raw)
        admitted = (await run_in_threadpool(node.submit, [tx]))[0]
        if not wait:
            status = "duplicate" if admitted.duplicate else "pending"
            return Submitted(hash=tx.hash, status=status)
        receipt = await node.wait_async(tx.hash, timeout_s)
        if receipt is None:
            return error_response(
                504, "commit_timeout", f"{tx.hash} not committed within {timeout_s}s; still pending"
            )
        return JSONResponse(
            Submitted.model_validate(
                {"hash": tx.hash, "status": "committed", "receipt": receipt}
            ).model_dump(),
            status_code=200,
        )

    @app.post(
        "/v1/txs/batch",
        response_model=BatchResult,
        responses=errors(BATCH_ERRORS),
        openapi_extra=json_body(BATCH_SCHEMA),
    )
    async def submit_batch(request: Request) -> BatchResult:
        """Admit many transactions; each gets its own result, a bad one does not stop the rest."""
        node.check_admission()
        raw = await read_body(request, MAX_BATCH_BYTES, _batch_too_large)
        try:
            body = parse_json(raw)
        except EncodingError as exc:
            raise TxRejected("tx_malformed", str(exc)) from exc
        items = body.get("txs") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
            raise TxRejected(
                "tx_malformed", f'body must be {{"txs": [1..{MAX_BATCH} transactions]}}'
            )
        return await run_in_threadpool(_admit_batch, node, items)

    @app.get(
        "/v1/txs/{tx_hash}",
        response_model=TxInfo,
        responses=errors({**TOKEN_ERRORS, 404: "no such transaction committed or pending"}),
    )
    def get_tx(tx_hash: str, _caller: Reader) -> TxInfo | JSONResponse:
        """A transaction's status and, once committed, its receipt."""
        # The mempool first: a block is written before its transactions leave the mempool, so
        # a transaction missing from both was never admitted (store first, a commit between
        # the two reads made an acknowledged transaction look unknown)
        pending = tx_hash in node.mempool
        found = ledger.store.tx(tx_hash) if TX_HASH.fullmatch(tx_hash) else None
        if found is not None:
            height, tx, receipt = found
            committed = {"status": "committed", "height": height, "tx": tx, "receipt": receipt}
            return TxInfo.model_validate({"hash": tx_hash, **committed})
        # Committed in memory, its block still being written: nobody has been told of it yet
        # (receipts wait for the disk), and the next proposal has already taken it out of the
        # mempool, so without this it read as unknown for the length of one block write
        if pending or tx_hash in ledger.live_txs:
            return TxInfo(hash=tx_hash, status="pending")
        return error_response(404, "unknown_tx", f"no transaction {tx_hash} committed or pending")

    @app.get(
        "/v1/txs/{tx_hash}/proof",
        response_model=None,  # the bundle is passed through as the ledger built it
        responses={
            200: {"content": {"application/json": {"schema": BUNDLE}}, "description": "the bundle"},
            **errors(
                {
                    **TOKEN_ERRORS,
                    404: "no such transaction committed or pending",
                    409: "the transaction is pending, not committed yet (`pending`)",
                }
            ),
        },
    )
    def get_tx_proof(tx_hash: str, _caller: Reader) -> JsonObject | JSONResponse:
        """A committed transaction's proof bundle (check it with `smartcity verify-proof`)."""
        bundle = ledger.tx_proof(tx_hash) if TX_HASH.fullmatch(tx_hash) else None
        if bundle is None:
            if tx_hash in node.mempool:
                return error_response(409, "pending", f"{tx_hash} is not committed yet")
            return error_response(404, "unknown_tx", f"no committed transaction {tx_hash}")
        return bundle

    @app.get(
        "/v1/blocks/{height}",
        response_model=BlockInfo,
        responses=errors({**TOKEN_ERRORS, 404: "no block at that height (`unknown_block`)"}),
    )
    def get_block(height: str, _caller: Reader) -> BlockInfo | JSONResponse:
        """A block's header, commit certificate and transaction hashes (`latest` for the newest)."""
        number = ledger.height if height == "latest" else _parse_height(height)
        if number is not None and ledger.store_height() < number <= ledger.height:
            ledger.flush()  # committed, its write still in flight
        found = ledger.store.block(number) if number is not None else None
        if found is None:
            return error_response(
                404, "unknown_block", f"no block {height}; the chain is at {ledger.height}"
            )
        header, cert = found
        # The hashes alone: parsing every body and receipt to take their hashes cost a reader
        # following the chain about as much per transaction as the node's execution did
        hashes = ledger.store.block_tx_hashes(number)  # type: ignore[arg-type]
        return BlockInfo.model_validate(
            {"hash": cert["block_hash"], "header": header, "certificate": cert, "txs": hashes}
        )

    install_state_reads(app, ledger, reader)

    @app.get("/v1/status", response_model=Status, responses=errors(TOKEN_ERRORS))
    async def status(_caller: Reader) -> Status:
        # The newest block on disk: a block committed in memory while its write is in flight
        # is not reported, so a height read here survives a crash (the receipts in that block
        # are not given out before it lands either)
        tip = ledger.durable
        return Status(
            chain_id=ledger.chain_id,
            genesis_hash=genesis_hash,
            height=tip.height,
            latest_hash=tip.block_hash,
            latest_time_ms=tip.time_ms,
            state_root=tip.state_root,
            mempool=len(node.mempool),
            role=node.role,
            node_key=node.key.public_hex if node.key else None,
            healthy=node.fatal is None,
        )

    @app.get("/v1/evidence", responses=errors(TOKEN_ERRORS))
    def evidence(
        _caller: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> EvidenceList:
        """Misbehaviour this node has seen: double votes and conflicting proposals."""
        return EvidenceList.model_validate({"evidence": ledger.store.evidence(limit)})

    @app.get("/v1/validators", responses=errors(TOKEN_ERRORS))
    def validators(_caller: Reader) -> ValidatorsInfo:
        return ValidatorsInfo.model_validate(
            {"height": ledger.height, "validators": ledger.validators()}
        )

    @app.get(
        "/v1/events",
        response_class=EventSourceResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "`block` events, then `overflow` if the reader falls behind",
            },
            **errors(TOKEN_ERRORS),
        },
    )
    async def events(
        _caller: Reader, from_height: Annotated[int | None, Query(ge=1)] = None
    ) -> EventSourceResponse:
        """Server-sent events: one `block` event per committed block with its contract events."""
        sub = node.subscribe()

        async def stream() -> AsyncIterator[dict[str, str]]:
            # Subscribed before replaying, so nothing committed meanwhile is missed; `sent`
            # drops what both the replay and the live queue deliver.
            sent = (from_height or ledger.height + 1) - 1
            try:
                if from_height is not None:
                    for h in range(from_height, ledger.height + 1):
                        found = ledger.store.block(h)
                        if found is None:
                            break
                        receipts = [Receipt.from_json(r) for _, r in ledger.store.block_txs(h)]
                        message = block_message(found[0], found[1]["block_hash"], receipts)
                        sent = h
                        yield {"event": "block", "id": str(h), "data": json.dumps(message)}
                while True:
                    live = await sub.queue.get()
                    if live is None:
                        yield {
                            "event": "overflow",
                            "data": "subscriber too slow; reconnect with from_height",
                        }
                        return
                    if live["height"] <= sent:
                        continue
                    sent = live["height"]
                    yield {"event": "block", "id": str(sent), "data": json.dumps(live)}
            finally:
                node.unsubscribe(sub)

        return EventSourceResponse(stream(), ping=15)

    install_document(app, reader=None if public_reads else reader)
    # Every other body (none is larger than a batch) is bounded too; a batch keeps its own code
    batch = _batch_too_large()
    refusals = {"/v1/txs/batch": (batch.code, batch.message)}
    app.add_middleware(BodyCeiling, max_bytes=MAX_BATCH_BYTES, refusals=refusals)
    return app


def _tx_too_large() -> TxRejected:
    return TxRejected("tx_too_large", f"a transaction is at most {MAX_TX_BYTES} bytes", status=413)


def _batch_too_large() -> TxRejected:
    return TxRejected("batch_too_large", f"batch over {MAX_BATCH_BYTES} bytes", status=413)


# What a transaction hash looks like: anything else names none (and is not sent to the database,
# where a NUL in it answered 503 storage_unavailable on PostgreSQL)
TX_HASH = re.compile("[0-9a-f]{64}")


def _parse_height(text: str) -> int | None:
    # ASCII digits only: str.isdigit also takes "²" (int() refuses it) and the digits of other
    # scripts (U+0661, an Arabic-Indic 1, named block 1 a second time)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def _admit_batch(node: Node, items: list[Any]) -> BatchResult:
    results: list[BatchItem] = []
    good = []
    parsed: list[Tx | TxRejected] = []
    for item in items:
        try:
            # tx_from_json refuses one whose canonical form exceeds MAX_TX_BYTES (413), the
            # limit peers hold it to; the body's own limit bounds the work before that
            parsed.append(tx_from_json(item))
        except TxRejected as exc:
            parsed.append(exc)
    # Signatures on every core at once; check_tx below then finds them verified
    verify_signatures([t for t in parsed if isinstance(t, Tx) and t.hash not in node.mempool])
    for entry in parsed:
        try:
            if isinstance(entry, TxRejected):
                raise entry
            tx = entry
            if tx.hash not in node.mempool:
                node.ledger.check_tx(tx)
        except TxRejected as exc:
            results.append(
                BatchItem(
                    hash=None,
                    status="rejected",
                    code=exc.code,
                    message=exc.message,
                    http_status=exc.status,
                )
            )
            continue
        good.append((len(results), tx))
        results.append(BatchItem(hash=tx.hash, status="pending"))
    if good:
        node.check_admission()
        admitted = node.mempool.add([tx for _, tx in good])
        for (index, _), adm in zip(good, admitted, strict=True):
            if adm.duplicate:
                results[index] = BatchItem(hash=adm.hash, status="duplicate")
    rejected = sum(r.status == "rejected" for r in results)
    return BatchResult(accepted=len(results) - rejected, rejected=rejected, results=results)
