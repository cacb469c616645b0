"""BFT consensus: 4 validators in-process and as 4 processes on loopback; the city-scale sim.

Committed transactions per second and commit latency (p50, p99) under a steady offered load,
with the ceiling measured in the same run: Ed25519 verifications per second times cores,
divided by the number of validators (every validator verifies every transaction).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._ceiling import ed25519_verifications_per_s
from chain.client import ChainClient, Identity
from chain.cluster import open_cluster
from chain.home import SuiteHome, init_suite, load_node_home
from chain.node import Node
from chain.sim import Scenario, run_scenario
from chain.tx import Tx, sign_tx

VALIDATORS = 4
SECONDS = float(os.environ.get("BENCH_CONSENSUS_SECONDS", "12"))


def _txs(key: Any, chain_id: str, count: int, salt: int) -> list[Tx]:
    txs = [
        sign_tx(
            key,
            chain_id=chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{salt:08x}{i:056x}", "count": 1, "label": "bench"},
            expiry_height=9_000,
        )
        for i in range(count)
    ]
    for tx in txs:
        _ = tx.hash
    return txs


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
    }


def _offered_load(
    submit: Any, wait_committed: Any, txs: list[Tx], rate_per_s: float
) -> dict[str, Any]:
    """Offer `txs` at a steady rate in batches every 50 ms; measure commits and latencies."""
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    batch = max(1, int(rate_per_s * 0.05))
    started = time.perf_counter()
    done = threading.Event()

    def watch() -> None:
        for tx in txs:
            if wait_committed(tx.hash, 120):
                latencies.append(time.perf_counter() - sent_at.get(tx.hash, started))
        done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for i in range(0, len(txs), batch):
        chunk = txs[i : i + batch]
        now = time.perf_counter()
        for tx in chunk:
            sent_at[tx.hash] = now
        submit(chunk)
        target = started + (i + batch) / rate_per_s
        time.sleep(max(0.0, target - time.perf_counter()))
    done.wait(180)
    elapsed = time.perf_counter() - started
    return {
        "offered_tx_per_s": round(rate_per_s, 1),
        "committed": len(latencies),
        "tx_per_s": round(len(latencies) / elapsed, 1),
        **_percentiles(latencies),
    }


def in_process(folder: Path, ceiling: float, rate: float) -> dict[str, Any]:
    genesis = init_suite(folder / "inproc", validators=VALIDATORS)
    cluster = open_cluster(folder / "inproc", empty_block_interval_ms=60_000)
    cluster.start()
    try:
        v0: Node = cluster.nodes["validator-0"]
        key = SuiteHome(folder / "inproc").org_key("city-agency")
        txs = _txs(key, genesis.chain_id, int(rate * SECONDS), 1)
        result = _offered_load(v0.submit, lambda h, t: v0.wait(h, t) is not None, txs, rate)
    finally:
        cluster.stop()
    return {
        "bench": "consensus_in_process",
        "validators": VALIDATORS,
        **result,
        "ceiling_tx_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(result["tx_per_s"] / ceiling, 3),
    }


def processes(folder: Path, ceiling: float, rate: float) -> dict[str, Any]:
    genesis = init_suite(folder / "procs", validators=VALIDATORS)
    homes = sorted((folder / "procs" / "nodes").iterdir())
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "smartcity", "node", "--home", str(h)],
            env={**os.environ, "SMARTCITY_DATABASE_URL": f"sqlite:///{h / 'bench.db'}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for h in homes
    ]
    key = SuiteHome(folder / "procs").org_key("city-agency")
    port = load_node_home(homes[0]).settings.port
    try:
        with ChainClient(
            f"http://127.0.0.1:{port}", identity=Identity("city-agency", key), timeout_s=120
        ) as c:
            c.wait_until_ready()
            txs = _txs(key, genesis.chain_id, int(rate * SECONDS), 2)
            lock = threading.Lock()
            seen: dict[str, float] = {}
            follow_stop = threading.Event()

            def follow() -> None:
                """Record when each transaction commits by reading new blocks (not per-tx polls)."""
                height = 0
                with ChainClient(
                    c._http.base_url.__str__(), identity=Identity("city-agency", key)
                ) as f:
                    while not follow_stop.is_set():
                        top = int(f.status()["height"])
                        for h in range(height + 1, top + 1):
                            now = time.perf_counter()
                            for tx_hash in f.block(h)["txs"]:
                                seen.setdefault(tx_hash, now)
                        height = top
                        time.sleep(0.02)

            follower = threading.Thread(target=follow, daemon=True)
            follower.start()

            def submit(chunk: list[Tx]) -> None:
                with lock:
                    c.submit_batch(chunk)

            def committed(tx_hash: str, timeout_s: float) -> bool:
                end = time.monotonic() + timeout_s
                while tx_hash not in seen and time.monotonic() < end:
                    time.sleep(0.005)
                return tx_hash in seen

            result = _offered_load(submit, committed, txs, rate)
            follow_stop.set()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=20)
    return {
        "bench": "consensus_processes",
        "validators": VALIDATORS,
        **result,
        "ceiling_tx_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(result["tx_per_s"] / ceiling, 3),
        "aim": ">= 3000 tx/s, p99 < 1 s at half load",
    }


def city_scale() -> dict[str, Any]:
    started = time.perf_counter()
    result = run_scenario(
        Scenario(
            seed=1,
            validators=16,
            byzantine=0,
            faults=(),
            observers=84,
            heights=10,
            heal_ms=0,
            latency_ms=(20, 200),
        )
    )
    latencies = [v / 1000 for v in result.commit_latency_ms]
    return {
        "bench": "city_scale_sim",
        "validators": 16,
        "observers": 84,
        "latency_ms": "20-200",
        "heights": result.committed_heights,
        "virtual_s": round(result.virtual_ms / 1000, 2),
        "blocks_per_virtual_s": round(result.committed_heights / (result.virtual_ms / 1000), 2),
        "txs_per_block": 4,
        **_percentiles(latencies),
        "messages": result.messages,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def run() -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    verify_rate = ed25519_verifications_per_s()
    ceiling = verify_rate * cores / VALIDATORS
    results: list[dict[str, Any]] = [
        {
            "bench": "consensus_ceiling",
            "verify_per_s_one_core": round(verify_rate, 1),
            "cores": cores,
            "ceiling_tx_per_s": round(ceiling, 1),
        }
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        only = os.environ.get("BENCH_CONSENSUS_ONLY", "")
        for rate in (ceiling, ceiling / 2):
            if only in ("", "in_process"):
                results.append(in_process(folder / f"ip{int(rate)}", ceiling, rate))
            if only in ("", "processes"):
                results.append(processes(folder / f"pr{int(rate)}", ceiling, rate))
    results.append(city_scale())
    return results
