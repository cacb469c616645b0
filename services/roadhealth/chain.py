"""The road-health service's chain access: its registry (segments, devices), anchors, proofs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from chain.encoding import hash_json
from chain.tx import sign_tx
from services.common.chain import ServiceChain
from services.common.errors import ChainRefused
from services.common.ledger import DEFAULT_TTL_BLOCKS, RemoteLedger


class RoadHealthChain(ServiceChain):
    """Reads and writes of the roadhealth contract, and the anchors of telemetry batches."""

    namespace = "roadhealth"

    def attest(
        self, method: str, args: dict[str, Any], *, what: str | None = None, wait: bool = True
    ) -> dict[str, Any]:
        """A fact the service attests with its operator key; a refusal is reported, not hidden.

        Without `wait` the transaction is only admitted and its receipt is not checked.
        """
        receipt = self.ctx.relay(self.namespace, method, args, wait=wait)
        if wait and receipt["status"] != "ok":
            refused = what or f"roadhealth.{method}"
            raise ChainRefused(
                f"the chain refused {refused}: {receipt['error']}", code=receipt["code"]
            )
        return receipt

    def attest_many(self, method: str, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Facts attested together: one submission of them all, then each one's receipt,
        refused or not (the caller judges). A refusal at the chain's door raises TxRejected
        with its status; the transactions admitted before it still commit."""
        txs = self.operator_txs(method, batch)
        self.ledger.submit_many(txs)
        return self.ledger.receipts(txs)

    def anchor_records(self, label: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Anchor each record (its canonical hash as a root of one, the record as metadata) with
        the operator's key, in one submission; each one's receipt. A record anchored before (a
        retry after a rollback) answers with the transaction that anchored it."""
        roots = [hash_json(r) for r in records]
        expiry = self.ledger.height() + DEFAULT_TTL_BLOCKS
        txs = [
            sign_tx(
                self.ctx.operator_key,
                chain_id=self.ctx.genesis.chain_id,
                contract="anchors",
                method="anchor",
                args={"root": root, "count": 1, "label": label, "metadata": record},
                expiry_height=expiry,
            )
            for root, record in zip(roots, records, strict=True)
        ]
        self.ledger.submit_many(txs)
        receipts = []
        for root, receipt in zip(roots, self.ledger.receipts(txs), strict=True):
            if receipt["status"] != "ok" and receipt.get("code") == "already_anchored":
                first = self.anchored_root(self.ctx.operator_org, root)
                receipt = {**receipt, "status": "ok", "tx": first} if first else receipt
            receipts.append(receipt)
        return receipts

    def device(self, device: str) -> dict[str, Any] | None:
        """A device's registry record, None when it was never registered."""
        record: dict[str, Any] | None = self.read(f"device:{device}")
        return record

    def block_stream(self) -> Callable[[int | None], Iterator[dict[str, Any]]] | None:
        """The node's committed blocks with their events (from a height), when the chain is a
        remote node; None for an embedded one."""
        ledger = self.ledger
        return ledger.client.events if isinstance(ledger, RemoteLedger) else None

    def device_proof(self, device: str) -> dict[str, Any]:
        """A state bundle for a device's registry record (or its absence)."""
        return self.proof(f"device:{device}")

    def anchored_root(self, org: str, root: str) -> Any:
        """The transaction in which `org` anchored the batch root `root`, if it did."""
        return self.read(f"root:{org}:{root}", namespace="anchors")

    def anchor_record(self, tx: str) -> dict[str, Any] | None:
        """The anchors contract's record of the batch anchored by transaction `tx`."""
        record: dict[str, Any] | None = self.read(f"batch:{tx}", namespace="anchors")
        return record
