"""The gap between heights gathers transactions only when there is a queue to gather.

After a commit that left transactions waiting, the next height waits `min_block_interval_ms`
for more (Tendermint's timeout_commit), so a busy chain makes a few blocks of many. After a
commit that left none, the next transaction starts a height at once: a lone caller writing one
thing after another (an agency issuing credentials, a bank's audited reads) used to wait the
whole gap, 100 ms a write, for nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.cluster import Cluster, open_cluster
from chain.home import SuiteHome
from chain.tx import Tx
from smartcity.demo import init_suite

from .test_cluster import FAST, anchors

GAP_S = 1.5


def _cluster(tmp_path: Path, validators: int) -> tuple[Cluster, list[Tx]]:
    genesis = init_suite(tmp_path / "suite", validators=validators, observers=0)
    cluster = open_cluster(
        tmp_path / "suite",
        timeouts=FAST,
        empty_block_interval_ms=60_000,
        min_block_interval_ms=int(GAP_S * 1000),
    )
    key = SuiteHome(tmp_path / "suite").org_key("city-agency")
    return cluster, anchors(genesis, key, 5, salt=7)


def _stop(cluster: Cluster) -> None:
    cluster.stop()
    for node in cluster.nodes.values():
        node.ledger.store.engine.dispose()


def test_a_lone_callers_writes_do_not_wait_for_the_gap(tmp_path: Path) -> None:
    """One write after another through one of 4 validators: each commits in a few ms, where
    each waited the whole gap. (A validator that commits a moment after the others may see the
    next write already gossiped and wait the gap once: the median is what a caller feels.)"""
    cluster, txs = _cluster(tmp_path, 4)
    cluster.start()
    try:
        entry = cluster.nodes["validator-0"]
        took = []
        for tx in txs:
            started = time.monotonic()
            entry.submit_and_wait(tx, timeout_s=30)
            took.append(time.monotonic() - started)
        assert statistics.median(took) < GAP_S / 4, took
    finally:
        _stop(cluster)


def test_transactions_a_block_left_waiting_are_gathered_for_the_gap(tmp_path: Path) -> None:
    """Three at once with room for two a block: the first two commit at once, and the one
    their block left waiting goes into a block started the gap after that commit."""
    cluster, txs = _cluster(tmp_path, 1)
    node = cluster.nodes["validator-0"]
    assert node.engine is not None
    node.engine.max_proposal_txs = node.engine.app.max_block_txs = 2
    cluster.start()
    try:
        node.submit_and_wait(txs[0], timeout_s=30)  # the chain has made its first blocks
        burst = txs[1:4]
        committed: dict[str, float] = {}
        started = time.monotonic()
        node.submit(burst)

        def stamp(tx_hash: str) -> Callable[[Any], object]:
            return lambda _future: committed.setdefault(tx_hash, time.monotonic())

        for tx in burst:
            node.wait_future(tx.hash).add_done_callback(stamp(tx.hash))
        for tx in burst:
            node.wait_future(tx.hash).result(timeout=30)
        waits = sorted(committed[tx.hash] - started for tx in burst)
        assert waits[1] < GAP_S / 2, waits
        assert waits[2] >= GAP_S, waits
        heights = {node.ledger.store.tx(tx.hash)[0] for tx in burst}  # type: ignore[index]
        assert len(heights) == 2, heights
    finally:
        _stop(cluster)
