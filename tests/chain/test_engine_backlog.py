"""A validator's backlog under consensus: a decided block's transactions stop counting as pending
the moment it commits in memory, not when its background write lands."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chain.cluster import Cluster, open_cluster
from chain.consensus.effects import Timeouts
from chain.home import SuiteHome
from chain.node import Node
from chain.tx import Tx, sign_tx
from smartcity.demo import init_suite

from ..conftest import _backends, fresh_database_url

FAST = Timeouts(propose_ms=400, prevote_ms=200, precommit_ms=200, delta_ms=100)


@dataclass
class Lone:
    """A lone validator under its consensus engine, its block writes held at `gate`."""

    cluster: Cluster
    node: Node
    txs: list[Tx]
    gate: threading.Event


@pytest.fixture(params=_backends())
def lone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[int], Lone]]:
    made: list[tuple[Cluster, Callable[[], None]]] = []

    def make(max_block_txs: int) -> Lone:
        genesis = init_suite(tmp_path / "lone", validators=1, observers=0)
        url, drop = fresh_database_url(request.param, tmp_path)
        # Heights start only for a full block (no gathering interval, no empty blocks)
        cluster = open_cluster(
            tmp_path / "lone",
            database_urls={"validator-0": url},
            timeouts=FAST,
            empty_block_interval_ms=60_000,
            min_block_interval_ms=60_000,
        )
        made.append((cluster, drop))
        node = cluster.nodes["validator-0"]
        node.engine.max_proposal_txs = node.engine.app.max_block_txs = max_block_txs
        store, gate = node.ledger.store, threading.Event()
        write = store.commit_block

        def held(**kwargs: Any) -> None:
            gate.wait(10)
            write(**kwargs)

        store.commit_block = held  # type: ignore[method-assign]
        key = SuiteHome(tmp_path / "lone").org_key("city-agency")
        txs = [
            sign_tx(
                key,
                chain_id=genesis.chain_id,
                contract="anchors",
                method="anchor",
                args={"root": f"{i:064x}", "count": 1, "label": "t"},
                expiry_height=1_000,
            )
            for i in range(1, 4)
        ]
        node.submit(txs)
        cluster.start()  # height 1 proposes the three at once
        return Lone(cluster, node, txs, gate)

    yield make
    for cluster, drop in made:
        cluster.stop()
        for node in cluster.nodes.values():
            node.ledger.store.engine.dispose()
        drop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_the_door_admits_again_while_a_committed_block_is_still_being_written(
    lone: Callable[[int], Lone],
) -> None:
    # Counted as backlog until their write landed, a committed block's transactions kept the
    # door refusing (429) batches it had room for: under overload the mempool then ran dry
    held = lone(4)  # a block of three is not full: the next height waits for more
    node, ledger = held.node, held.node.ledger
    node.options.admit_floor = 3  # the door admits while fewer than three are pending
    wait_for(lambda: ledger.height >= 1)
    wait_for(lambda: len(node.mempool) == 0, 5)  # out of the backlog at once...
    assert ledger.durable.height == 0  # ...though its write is still held
    node.check_admission()  # no 429: nothing is waiting to be committed
    held.gate.set()
    wait_for(lambda: ledger.durable.height >= 1)
    assert all(ledger.store.tx(tx.hash) is not None for tx in held.txs)


def test_a_full_block_being_written_starts_no_empty_height(lone: Callable[[int], Lone]) -> None:
    # Still in the mempool, a full block's transactions started the next height at once; its
    # proposal found them committed, dropped them and the chain committed an empty block
    held = lone(3)
    ledger = held.node.ledger
    wait_for(lambda: ledger.height >= 1)
    time.sleep(0.3)  # the engine's loop runs with the write still held
    held.gate.set()
    wait_for(lambda: ledger.durable.height >= 1)
    time.sleep(0.5)
    assert ledger.height == 1
    assert all(ledger.store.tx(tx.hash) is not None for tx in held.txs)
