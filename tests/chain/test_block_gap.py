"""The gap between heights gathers transactions when there is a queue to gather.

After a commit that left transactions waiting, the next height waits `min_block_interval_ms`
for more (Tendermint's timeout_commit), so a busy chain makes a few blocks of many. After a
commit that left none, the next transaction starts a height at once while an allowance of
HEIGHT_BURST heights lasts (refilled at one a gap): a caller writing a few things one after
another (an agency issuing a credential, a bank's audited read) used to wait the whole gap,
100 ms a write, for nothing, and a steady trickle still makes no more blocks than the gap
allows.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chain.cluster import Cluster, open_cluster
from chain.consensus.engine import HEIGHT_BURST
from chain.home import SuiteHome
from chain.tx import Tx
from smartcity.demo import init_suite

from .test_cluster import FAST, anchors

GAP_S = 1.5


def _cluster(tmp_path: Path, validators: int, gap_s: float = GAP_S) -> tuple[Cluster, list[Tx]]:
    genesis = init_suite(tmp_path / "suite", validators=validators, observers=0)
    cluster = open_cluster(
        tmp_path / "suite",
        timeouts=FAST,
        empty_block_interval_ms=60_000,
        min_block_interval_ms=int(gap_s * 1000),
    )
    key = SuiteHome(tmp_path / "suite").org_key("city-agency")
    return cluster, anchors(genesis, key, 2 * HEIGHT_BURST, salt=7)


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
        for tx in txs[:5]:
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


def test_a_long_run_of_writes_makes_no_more_heights_than_the_gap_allows(tmp_path: Path) -> None:
    """Once the allowance is spent, a caller writing one thing after another gets about one
    height a gap, as before: a steady trickle does not turn into a block per transaction."""
    cluster, txs = _cluster(tmp_path, 1, gap_s=0.2)
    node = cluster.nodes["validator-0"]
    cluster.start()
    try:
        started = time.monotonic()
        for tx in txs:
            node.submit_and_wait(tx, timeout_s=30)
        took = time.monotonic() - started
        # The allowance covers HEIGHT_BURST heights (one went on the first block); each height
        # beyond needs at least half a gap of refill on average (a full one but for rounding)
        assert took >= (len(txs) - HEIGHT_BURST - 2) * 0.2 / 2, took
    finally:
        _stop(cluster)
