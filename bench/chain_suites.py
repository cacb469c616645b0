"""BFT consensus of 4 in-process validators on each crypto suite, beside each suite's ceiling.

For each suite (ed25519-sha256, sm2-sm3; chain/suites), a fresh chain of 4 validators in one
process (chain.cluster, the engine of `make up`) is offered BENCH_CHAIN_SUITES_TXS anchor
transactions (default 1,500, signed before the clock starts) in batches of 250 at validator-0,
and the run ends when every one has committed. Figures: committed transactions per second of
wall time, the process's CPU per transaction, and the ceiling measured in the same run: the
suite's signature verifications per second on one core (thread CPU time) times the cores, as
the in-process validators share one verification per transaction (bench/consensus.py's
in-process ceiling, per suite). The SM suite is skipped, with the reason, where libcrypto.so.3
is missing.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from bench.crypto_suites import MESSAGE, _cpu_rate
from chain.cluster import open_cluster
from chain.errors import TxRejected
from chain.node import Node
from chain.suites import SUITE_NAMES, SuiteUnavailable, load_any_key, suite_for
from chain.tx import VERIFIED, Tx, sign_tx
from smartcity.demo import init_suite

TXS = int(os.environ.get("BENCH_CHAIN_SUITES_TXS", "1500"))
BATCH = 250
TIMEOUT_S = 600.0


def _ceiling(name: str) -> float:
    """The suite's verifications per second on one core, times the cores."""
    suite = suite_for(name)
    key = suite.generate()
    signature = suite.sign(key, MESSAGE)
    count, spent = _cpu_rate(lambda: suite.verify(key.public_hex, MESSAGE, signature), 1.0)
    return count / spent * (os.cpu_count() or 1)


def _chain_run(name: str, folder: Path) -> dict[str, Any]:
    genesis = init_suite(folder, validators=4, crypto=name)
    cluster = open_cluster(folder, empty_block_interval_ms=60_000)
    key = load_any_key(folder / "orgs" / "city-agency" / "key.jwk")
    txs: list[Tx] = [
        sign_tx(
            key,
            chain_id=genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{i:064x}", "count": 1, "label": "bench"},
            expiry_height=9_000,
        )
        for i in range(TXS)
    ]
    VERIFIED.clear()  # signed here, verified there: nothing verified before the clock
    v0 = cluster.nodes["validator-0"]
    cluster.start()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        futures: list[Future[Any]] = []
        for i in range(0, len(txs), BATCH):
            _submit_when_admitted(v0, txs[i : i + BATCH])
            futures.extend(v0.wait_future(tx.hash) for tx in txs[i : i + BATCH])
        for future in futures:
            future.result(timeout=TIMEOUT_S)
        wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        cluster.stop()
    return {
        "committed": len(txs),
        "seconds": round(wall_s, 2),
        "tx_per_s": round(len(txs) / wall_s, 1),
        "cpu_us_per_tx": round(1e6 * cpu_s / len(txs), 1),
    }


def _submit_when_admitted(node: Node, txs: list[Tx]) -> None:
    """Submit as a client honouring back-pressure does: a full mempool is retried shortly."""
    while True:
        try:
            node.submit(txs)
            return
        except TxRejected as exc:
            if exc.code != "mempool_full":
                raise
            time.sleep(0.01)


def run() -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for name in SUITE_NAMES:
        try:
            ceiling = _ceiling(name)
        except SuiteUnavailable as exc:
            results.append({"bench": "chain_suites", "suite": name, "skipped": str(exc)})
            continue
        with tempfile.TemporaryDirectory(prefix="bench-chain-suites-") as folder:
            figures = _chain_run(name, Path(folder) / "chain")
        results.append(
            {
                "bench": "chain_suites",
                "suite": name,
                "validators": 4,
                **figures,
                "ceiling_tx_per_s": round(ceiling, 1),
                "ratio_to_ceiling": round(figures["tx_per_s"] / ceiling, 3),
            }
        )
    return results
