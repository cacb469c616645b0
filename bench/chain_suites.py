"""BFT consensus on each crypto suite, as 4 validator processes and in one process, beside ceilings.

For each suite (ed25519-sha256, sm2-sm3; chain/suites), in one run:

- the ceiling: the suite's signature verifications per second on one core (thread CPU time),
  times the cores, divided by the 4 validators that each verify every transaction once
  (bench/consensus.py's process ceiling, per suite);
- 4 `smartcity node` processes on loopback over TLS 1.3 links (bench/consensus.py's
  ProcessNetwork on a genesis of that suite, its load signed with the suite's organisation key),
  offered open-loop at the suite's ceiling for BENCH_CONSENSUS_SECONDS (default 12): a warm-up,
  then saturation (the reported figure), then half the saturated rate (the latency without a
  queue). A 429 (mempool full) is counted as refused, not retried, as the consensus bench does.
  Figures: committed tx/s, commit latency p50/p99, the four nodes' CPU per committed
  transaction, the ratio to the ceiling;
- 4 validators in one process (chain.cluster, the engine of `make up`) given a burst of
  BENCH_CHAIN_SUITES_TXS anchor transactions (default 1,500, signed before the clock starts),
  in batches of 250 at validator-0, retried on mempool_full; its ceiling is the verifications
  per second times the cores, as the in-process validators share one verification per
  transaction.

BENCH_CHAIN_SUITES_ONLY=processes or in_process runs one kind. The SM suite is skipped, with the
reason, where libcrypto.so.3 is missing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from bench.consensus import P2P, VALIDATORS, ProcessNetwork
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
ONLY = os.environ.get("BENCH_CHAIN_SUITES_ONLY", "")


def _verify_per_s_one_core(name: str) -> float:
    """The suite's signature verifications per second of one thread's CPU time."""
    suite = suite_for(name)
    key = suite.generate()
    signature = suite.sign(key, MESSAGE)
    count, spent = _cpu_rate(lambda: suite.verify(key.public_hex, MESSAGE, signature), 1.0)
    return count / spent


def _processes(name: str, folder: Path, ceiling: float) -> list[dict[str, Any]]:
    """4 node processes on the suite: warm-up and saturation offered at its ceiling, then half
    the saturated rate."""
    network = ProcessNetwork(folder, crypto=name)
    try:
        warm = network.run(ceiling, salt=1)
        saturated = network.run(ceiling, salt=2)
        half = network.run(max(1.0, saturated["tx_per_s"] / 2), salt=3)
    finally:
        network.close()
    common = {
        "suite": name,
        "validators": VALIDATORS,
        "p2p": P2P,
        "ceiling_tx_per_s": round(ceiling, 1),
    }
    return [
        {"bench": "chain_suites_processes_warm_up", **common, **warm},
        {
            "bench": "chain_suites_processes_saturation",
            **common,
            **saturated,
            "ratio_to_ceiling": round(saturated["tx_per_s"] / ceiling, 3),
        },
        {"bench": "chain_suites_processes_half_load", **common, **half},
    ]


def _in_process(name: str, folder: Path, ceiling: float) -> dict[str, Any]:
    """A burst of TXS transactions committed by 4 validators in one process."""
    genesis = init_suite(folder, validators=VALIDATORS, crypto=name)
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
    tx_per_s = len(txs) / wall_s
    return {
        "bench": "chain_suites_in_process",
        "suite": name,
        "validators": VALIDATORS,
        "committed": len(txs),
        "seconds": round(wall_s, 2),
        "tx_per_s": round(tx_per_s, 1),
        "cpu_us_per_tx": round(1e6 * cpu_s / len(txs), 1),
        "ceiling_tx_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(tx_per_s / ceiling, 3),
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


def run() -> Iterator[dict[str, Any]]:
    """Results as they are measured (python -m bench prints each at once)."""
    if ONLY not in ("", "processes", "in_process"):
        raise SystemExit(f"BENCH_CHAIN_SUITES_ONLY is processes or in_process, not {ONLY!r}")
    cores = os.cpu_count() or 1
    for name in SUITE_NAMES:
        try:
            verify_rate = _verify_per_s_one_core(name)
        except SuiteUnavailable as exc:
            yield {"bench": "chain_suites", "suite": name, "skipped": str(exc)}
            continue
        ceiling, shared_ceiling = verify_rate * cores / VALIDATORS, verify_rate * cores
        yield {
            "bench": "chain_suites_ceiling",
            "suite": name,
            "verify_per_s_one_core": round(verify_rate, 1),
            "cores": cores,
            "ceiling_tx_per_s": round(ceiling, 1),
            "ceiling_in_process_tx_per_s": round(shared_ceiling, 1),
        }
        with tempfile.TemporaryDirectory(prefix="bench-chain-suites-") as tmp:
            if ONLY in ("", "processes"):
                yield from _processes(name, Path(tmp) / "procs", ceiling)
            if ONLY in ("", "in_process"):
                yield _in_process(name, Path(tmp) / "inproc", shared_ceiling)
