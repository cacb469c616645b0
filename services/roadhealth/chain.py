"""The road-health service's chain access: its registry (segments, devices), anchors, proofs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from services.common.chain import ServiceChain
from services.common.errors import ChainRefused
from services.common.ledger import RemoteLedger


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
