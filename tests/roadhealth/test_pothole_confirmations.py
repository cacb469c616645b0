"""A batch's pothole confirmations go to the chain together; a refusal part-way through leaves
the chain and the database in step, and the gateway's retry of the batch converges."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from chain.errors import TxRejected
from chain.tx import Tx
from iot_gateway.simulator import PassFleet, ingest_body
from services.roadhealth.models import RhPothole
from smartcity.roadhealth_harness import Harness, running

T0 = 1_770_000_000.0


def one_batch_of_passes(h: Harness) -> list[dict[str, Any]]:
    """Four vehicles drive every demo segment once, a third of them with a pothole: one
    batch whose ingest confirms several potholes at once."""
    vehicles = [h.register(f"veh-{i}", ("car", "van", "bus", "car")[i], 21 + i) for i in range(4)]
    fleet = PassFleet(h.runtime.index)
    segments = sorted(h.runtime.index.lengths_m)
    for j, segment in enumerate(segments):
        fleet.plan(segment, base_iri=2.0, seed=j, potholes=1 if j % 3 == 0 else 0, bumps=0)
    payloads = []
    for i, vehicle in enumerate(vehicles):
        for j, segment in enumerate(segments):
            payloads += fleet.drive(
                vehicle,
                segment,
                speed_mps=9.0 + 2 * i,
                t0=T0 + i * 3000 + j * 100,
                reverse=i % 2 == 1,
                seed=100 * j + i,
            )
    return payloads


class BusyChain:
    """The chain's door admits the first `admit` confirmations of the next batch of them and
    refuses the rest with 429, as a node whose mempool fills part-way."""

    def __init__(self, h: Harness, monkeypatch: pytest.MonkeyPatch, *, admit: int) -> None:
        self.ledger, self.admit = h.ledger, admit
        self.offered: list[Tx] = []
        self._submit_many = self.ledger.submit_many
        monkeypatch.setattr(self.ledger, "submit_many", self.submit_many)

    def submit_many(self, txs: list[Tx]) -> list[str]:
        if self.offered or not txs or txs[0].method != "confirm_pothole":
            return list(self._submit_many(txs))
        self.offered = list(txs)
        if self.admit:
            self._submit_many(txs[: self.admit])
        raise TxRejected("mempool_full", "the mempool filled part-way: retry", status=429)


def stored_potholes(h: Harness) -> dict[str, RhPothole]:
    engine = create_engine(h.runtime.ctx.database_url)
    try:
        with Session(engine) as session:
            return {p.id: p for p in session.scalars(select(RhPothole))}
    finally:
        engine.dispose()


def on_chain(h: Harness, pothole: str) -> Any:
    return h.ledger.read("roadhealth", f"pothole:{pothole}")


def committed(h: Harness, pothole: str, timeout_s: float = 10.0) -> bool:
    """Whether the chain comes to hold the pothole (an admitted transaction commits soon)."""
    deadline = time.monotonic() + timeout_s
    while on_chain(h, pothole) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_refusal_part_way_leaves_nothing_behind_and_the_retry_converges(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path, db_url) as h:
        payloads = one_batch_of_passes(h)
        busy = BusyChain(h, monkeypatch, admit=2)
        body = ingest_body(h.ledger, h.key("bsn-operator"), payloads)
        gateway = h.auth("bsn-operator")

        first = h.client.post("/roadhealth/v1/ingest", json=body, headers=gateway)
        # The gateway is told to come back (it retries 429), and nothing of the batch is kept,
        # although the chain took the confirmations it admitted
        assert first.status_code == 429, first.text
        assert first.headers["retry-after"] == "1"
        assert len(busy.offered) >= 3
        assert stored_potholes(h) == {}
        admitted = [tx.args["pothole"] for tx in busy.offered[:2]]
        assert all(committed(h, p) for p in admitted)

        again = h.client.post("/roadhealth/v1/ingest", json=body, headers=gateway)
        assert again.status_code == 200, again.text
        assert again.json()["stored"] == len(payloads)
        # In step: every pothole the chain confirms is confirmed here with the chain's counts,
        # and the other way round
        potholes = stored_potholes(h)
        confirmed = {p.id for p in potholes.values() if p.status == "confirmed"}
        assert confirmed == {tx.args["pothole"] for tx in busy.offered}
        for pothole in confirmed:
            record = on_chain(h, pothole)
            assert (record["reports"], record["vehicles"]) == (
                potholes[pothole].reports,
                potholes[pothole].vehicles,
            )


def test_a_chain_holding_more_reports_does_not_refuse_the_batch(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path, db_url) as h:
        payloads = one_batch_of_passes(h)
        busy = BusyChain(h, monkeypatch, admit=0)  # learns what the batch confirms, admits none
        body = ingest_body(h.ledger, h.key("bsn-operator"), payloads)
        gateway = h.auth("bsn-operator")
        assert h.client.post("/roadhealth/v1/ingest", json=body, headers=gateway).status_code == 429
        # Meanwhile the chain came to hold one of them with more reports than this batch gives
        # it (say, from an attempt whose batch was then rolled back, with readings since lost)
        ahead = dict(busy.offered[1].args, reports=busy.offered[1].args["reports"] + 5)
        assert h.runtime.chain.attest("confirm_pothole", ahead)["status"] == "ok"

        answer = h.client.post("/roadhealth/v1/ingest", json=body, headers=gateway)
        # The readings are stored (not refused for good with 409 stale_pothole); the chain's
        # record stays as it is, and the others are confirmed with the chain's counts
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == len(payloads)
        potholes = stored_potholes(h)
        assert potholes[ahead["pothole"]].status == "candidate"
        assert on_chain(h, ahead["pothole"])["reports"] == ahead["reports"]
        others = [tx.args for tx in busy.offered if tx.args["pothole"] != ahead["pothole"]]
        assert others
        for args in others:
            assert potholes[args["pothole"]].status == "confirmed"
            assert on_chain(h, args["pothole"])["reports"] == potholes[args["pothole"]].reports
