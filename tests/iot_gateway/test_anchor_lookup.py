"""The anchor step looks a root up on the chain only when the batch may be anchored already."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iot_gateway.forwarder import Forwarder, ForwardSettings
from iot_gateway.metrics import Metrics
from iot_gateway.outbox import Outbox
from services.common.ledger import call
from tests.iot_gateway.conftest import SuiteUnderTest
from tests.iot_gateway.test_outbox_contract import message


class CountingLedger:
    """The suite's ledger, counting root look-ups and submissions."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.root_reads = 0
        self.submits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, namespace: str, key: str) -> Any:
        if namespace == "anchors" and key.startswith("root:"):
            self.root_reads += 1
        return self.inner.read(namespace, key)

    def submit(self, tx: Any, **kwargs: Any) -> dict[str, Any]:
        self.submits += 1
        result: dict[str, Any] = self.inner.submit(tx, **kwargs)
        return result


def forwarder(outbox: Outbox, ledger: CountingLedger, suite: SuiteUnderTest) -> Forwarder:
    settings = ForwardSettings(
        roadhealth_url=suite.roadhealth_url,
        operator_org="bsn-operator",
        operator_key=suite.operator_key,
        batch_wait_s=0.0,
    )
    return Forwarder(outbox, ledger=ledger, settings=settings, metrics=Metrics())  # type: ignore[arg-type]


def test_a_batch_sealed_now_is_anchored_without_a_look_up_and_one_left_open_is_looked_up(
    suite: SuiteUnderTest, tmp_path: Path
) -> None:
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}", owner="gw-a")
    outbox.store([message("d1", seq) for seq in range(5)])
    ledger = CountingLedger(suite.ledger)
    running = forwarder(outbox, ledger, suite)
    running.note_stored(5)
    assert running.step_anchor()
    assert ledger.root_reads == 0 and ledger.submits == 1
    done = outbox.next_open_batch("anchored")
    assert outbox.batch_states() == {"anchored": 1} and done is not None
    outbox.mark_forwarded(done.id)
    # Killed between the anchor's commit and its mark: the restarted forwarder finds the batch
    # open, looks its root up and marks it with the first anchor instead of submitting again
    outbox.store([message("d1", seq) for seq in range(5, 9)])
    batch = outbox.seal_batch(max_count=1000)
    assert batch is not None
    root = {"root": batch.root, "count": batch.count, "label": "iot-gateway"}
    first = call(suite.ledger, suite.operator_key, "anchors", "anchor", root)
    assert first["status"] == "ok"
    ledger = CountingLedger(suite.ledger)
    assert forwarder(outbox, ledger, suite).step_anchor()
    assert ledger.root_reads == 1 and ledger.submits == 0
    anchored = outbox.next_open_batch("anchored")
    assert anchored is not None and anchored.id == batch.id and anchored.anchor_tx == first["tx"]
    outbox.close()
