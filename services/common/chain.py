"""A service's access to the chain, one shape for all three: `services/<svc>/chain.py`.

Each service subclasses `ServiceChain` for its own contract namespace and names the contract
error codes it turns into its own errors (`refusals`); everything else is shared: reads with
and without proof, transaction proofs, operator-relayed writes, caller-signed writes, and the
wait until state reads reflect a receipt's block.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from chain.errors import TxRejected
from chain.tx import Tx, sign_tx, tx_from_json
from services.common.context import ServiceContext
from services.common.errors import (
    ChainRefused,
    Forbidden,
    NotFound,
    ServiceError,
    Unprocessable,
)
from services.common.ledger import DEFAULT_TTL_BLOCKS, LedgerPort


class ServiceChain:
    """Reads and writes of one service's contract, with refusals turned into service errors."""

    namespace: ClassVar[str]
    # Contract error code -> the service error a caller gets (others: ChainRefused)
    refusals: ClassVar[Mapping[str, type[ServiceError]]] = {}
    # Whether a refusal's details name the transaction and its height
    refusal_details: ClassVar[bool] = False

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @property
    def ledger(self) -> LedgerPort:
        return self.ctx.ledger

    # -- reads -------------------------------------------------------------------------------

    def read(self, key: str, *, namespace: str | None = None) -> Any:
        """The value at `key` in this service's namespace (or another's), None when absent."""
        return self.ledger.read(namespace or self.namespace, key)

    def read_many(self, keys: list[str], *, namespace: str | None = None) -> list[Any]:
        """The values at `keys` (None where absent), in order: a few thousand keys a request to
        a remote node, not one request per key."""
        return self.ledger.read_many(namespace or self.namespace, keys)

    def proof(self, key: str, *, namespace: str | None = None) -> dict[str, Any]:
        """A state bundle for a key: its value, or its absence, proven against a header."""
        return self.ledger.state_proof(namespace or self.namespace, key)

    def tx_proof(self, tx_hash: str) -> dict[str, Any] | None:
        """The proof bundle of a committed transaction, None when it is not committed."""
        return self.ledger.tx_proof(tx_hash)

    def committed_proof(self, tx_hash: str) -> dict[str, Any]:
        """The proof bundle of a committed transaction; NotFound when it is not committed."""
        proof = self.ledger.tx_proof(tx_hash)
        if proof is None:
            raise NotFound(f"transaction {tx_hash} is not committed", code="unknown_tx")
        return proof

    def height(self) -> int:
        return self.ledger.height()

    # -- refusals ----------------------------------------------------------------------------

    def refusal(self, receipt: dict[str, Any]) -> ServiceError:
        """The service error for a failed receipt, keeping the contract's code and message."""
        code = str(receipt.get("code") or "failed")
        message = str(receipt.get("error") or code)
        details = (
            {"tx": receipt.get("tx"), "height": receipt.get("height")}
            if self.refusal_details
            else None
        )
        return self.refusals.get(code, ChainRefused)(message, code=code, details=details)

    def require_ok(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """The receipt when its transaction succeeded; its refusal raised otherwise."""
        if receipt.get("status") != "ok":
            raise self.refusal(receipt)
        return receipt

    def settle(self, receipt: dict[str, Any], *, timeout_s: float = 5.0) -> None:
        """Wait until state reads reflect the receipt's block.

        A node may hand out a receipt as soon as its block is stored, a moment before the
        block's state becomes what `read` returns; reading our own write right after the
        receipt could then see the state before it.
        """
        deadline = time.monotonic() + timeout_s
        while self.ledger.height() < int(receipt["height"]) and time.monotonic() < deadline:
            time.sleep(0.001)

    # -- writes ------------------------------------------------------------------------------

    def relay(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Write with the service's operator key and wait for the commit; refusals raise."""
        receipt = self.require_ok(self.ctx.relay(self.namespace, method, args))
        self.settle(receipt)
        return receipt

    def operator_txs(self, method: str, batches: list[dict[str, Any]]) -> list[Tx]:
        """The operator's transactions calling `method` once per args, sharing one expiry."""
        expiry = self.ledger.height() + DEFAULT_TTL_BLOCKS
        return [
            sign_tx(
                self.ctx.operator_key,
                chain_id=self.ctx.genesis.chain_id,
                contract=self.namespace,
                method=method,
                args=args,
                expiry_height=expiry,
            )
            for args in batches
        ]

    def relay_many(self, method: str, batches: list[dict[str, Any]]) -> list[str]:
        """Submit many operator transactions at once, wait for all, raise on the first refusal."""
        txs = self.operator_txs(method, batches)
        self.ledger.submit_many(txs)
        receipts = [self.require_ok(r) for r in self.ledger.receipts(txs)]
        self.settle(max(receipts, key=lambda r: int(r["height"])))
        return [tx.hash for tx in txs]

    def submit_signed(self, tx: Tx) -> dict[str, Any]:
        """Submit a caller-signed transaction and wait; refusals at the door or in a block raise."""
        receipt = self.require_ok(self.ledger.submit(tx, wait=True))
        self.settle(receipt)
        return receipt


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
