"""Chain writes of the credit service: relayed or self-signed, with refusals mapped to HTTP."""

from __future__ import annotations

import time
from typing import Any

from chain.errors import TxRejected
from chain.tx import Tx, sign_tx, tx_from_json
from services.common.context import ServiceContext
from services.common.errors import Forbidden, NotFound, ServiceError, Unprocessable
from services.common.ledger import DEFAULT_TTL_BLOCKS
from services.credit import contract
from services.credit._service_errors import AlreadyExists, ChainRefused, ConsentRequired

_FORBIDDEN = {"no_consent", "consent_revoked", "consent_expired", "consent_not_started"}
_CONFLICT = {"sme_exists", "model_exists", "model_not_pending", "model_retired"}
_NOT_FOUND = {"unknown_sme", "unknown_model", "unknown_proposal"}
_UNPROCESSABLE = {
    "unknown_org",
    "not_sme",
    "unknown_key",
    "unknown_bank",
    "bad_uscc",
    "bad_period",
    "bad_args",
    "bad_params",
}


def refusal(receipt: dict[str, Any]) -> ServiceError:
    """The HTTP error for a failed receipt, keeping the contract's code and message."""
    code, message = str(receipt.get("code")), str(receipt.get("error"))
    details = {"tx": receipt.get("tx"), "height": receipt.get("height")}
    if code in _FORBIDDEN:
        return ConsentRequired(message, code=code, details=details)
    if code == "forbidden":
        return Forbidden(message, code=code, details=details)
    if code in _CONFLICT:
        return AlreadyExists(message, code=code, details=details)
    if code in _NOT_FOUND:
        return NotFound(message, code=code, details=details)
    if code in _UNPROCESSABLE:
        return Unprocessable(message, code=code, details=details)
    return ChainRefused(message, code=code, details=details)


def require_ok(receipt: dict[str, Any]) -> dict[str, Any]:
    if receipt.get("status") != "ok":
        raise refusal(receipt)
    return receipt


def settle(ctx: ServiceContext, receipt: dict[str, Any], *, timeout_s: float = 5.0) -> None:
    """Wait until state reads reflect the receipt's block.

    A node may hand out a receipt as soon as its block is stored, a moment before the block's
    state becomes what `read` returns (see the report on chain/node.py); reading our own write
    right after the receipt could then see the state before it.
    """
    deadline = time.monotonic() + timeout_s
    while ctx.ledger.height() < int(receipt["height"]) and time.monotonic() < deadline:
        time.sleep(0.001)


def relay(ctx: ServiceContext, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """Write with the service's operator key and wait for the commit; refusals raise."""
    receipt = require_ok(ctx.relay(contract.NAMESPACE, method, args))
    settle(ctx, receipt)
    return receipt


def relay_many(ctx: ServiceContext, method: str, batches: list[dict[str, Any]]) -> list[str]:
    """Submit many operator transactions at once, wait for all, raise on the first refusal."""
    expiry = ctx.ledger.height() + DEFAULT_TTL_BLOCKS
    txs = [
        sign_tx(
            ctx.operator_key,
            chain_id=ctx.genesis.chain_id,
            contract=contract.NAMESPACE,
            method=method,
            args=args,
            expiry_height=expiry,
        )
        for args in batches
    ]
    ctx.ledger.submit_many(txs)
    receipts = [require_ok(ctx.ledger.submit(tx, wait=True)) for tx in txs]
    settle(ctx, max(receipts, key=lambda r: int(r["height"])))
    return [tx.hash for tx in txs]


def parse_signed(raw: dict[str, Any], *, signer: str, contract_name: str, methods: set[str]) -> Tx:
    """A caller-signed transaction, checked to be the caller's own call of an allowed method."""
    try:
        tx = tx_from_json(raw)
    except TxRejected as exc:
        raise Unprocessable(exc.message, code=exc.code) from exc
    # Verify the transaction is signed by the authenticated caller, for the expected call
    if tx.sender != signer:
        raise Forbidden(
            "the transaction must be signed by the key of your bearer token"
            f" ({signer[:16]}…), not {tx.sender[:16]}…",
            code="not_your_signature",
        )
    if tx.contract != contract_name or tx.method not in methods:
        raise Unprocessable(
            f"expected a {contract_name}.{'|'.join(sorted(methods))} transaction,"
            f" got {tx.contract}.{tx.method}",
            code="wrong_transaction",
        )
    if not tx.has_valid_signature():
        raise Unprocessable("the transaction's signature does not verify", code="bad_signature")
    return tx


def submit_signed(ctx: ServiceContext, tx: Tx) -> dict[str, Any]:
    """Submit a caller-signed transaction and wait; refusals at the door or in the block raise."""
    receipt = require_ok(ctx.ledger.submit(tx, wait=True))
    settle(ctx, receipt)
    return receipt


def tx_proof(ctx: ServiceContext, tx_hash: str) -> dict[str, Any]:
    proof = ctx.ledger.tx_proof(tx_hash)
    if proof is None:
        raise NotFound(f"transaction {tx_hash} is not committed", code="unknown_tx")
    return proof
