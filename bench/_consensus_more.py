"""The consensus bench's storage and city-scale runs (bench.consensus runs them): bytes on
disk per anchored record, and the deterministic simulator at city scale."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench._processes import cpu_s
from chain.cluster import open_cluster
from chain.home import SuiteHome
from chain.node import Node
from chain.sim import Scenario, run_scenario
from chain.tx import sign_tx
from smartcity.demo import init_suite

VALIDATORS = 4
RECORD_RATE = 20  # records per second: a demo fleet's telemetry
STORAGE_SECONDS = float(os.environ.get("BENCH_STORAGE_SECONDS", "20"))


# The lone validator's own threads, by name (a pool's threads by its prefix)
NODE_THREADS = ("block-producer", "block-writer", "tx-verify")


def node_threads_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system, from /proc) each of this process's node threads has used,
    summed by NODE_THREADS name: where a lone validator's time goes. Threads are named in
    Python only, so they are found by their native ids (one that ended since enumerate()
    counts 0)."""
    used, pid = dict.fromkeys(NODE_THREADS, 0.0), os.getpid()
    for thread in threading.enumerate():
        group = next((g for g in NODE_THREADS if thread.name.startswith(g)), None)
        if group is not None and thread.native_id is not None:
            used[group] += cpu_s(pid, thread.native_id)
    return used


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
    }


def anchoring_storage(folder: Path, window_s: float, block_gap_ms: int) -> dict[str, Any]:
    """Bytes on disk per node per anchored record for a trickle of records (a small fleet,
    RECORD_RATE per second) anchored once per `window_s`, with consensus waiting `block_gap_ms`
    between heights: 0.2 s and no gap was the old behaviour, 1 s and 100 ms the new."""
    genesis = init_suite(folder, validators=VALIDATORS)
    cluster = open_cluster(
        folder, empty_block_interval_ms=60_000, min_block_interval_ms=block_gap_ms
    )
    cluster.start()
    v0: Node = cluster.nodes["validator-0"]
    key = SuiteHome(folder).org_key("bsn-operator")
    records = anchors = 0
    try:
        time.sleep(1.0)
        db = folder / "nodes" / "validator-1" / "chain.db"
        start_bytes, start_height = _db_bytes(db), v0.ledger.height
        started = time.perf_counter()
        while time.perf_counter() - started < STORAGE_SECONDS:
            count = max(1, round(RECORD_RATE * window_s))
            tx = sign_tx(
                key,
                chain_id=genesis.chain_id,
                contract="anchors",
                method="anchor",
                args={"root": os.urandom(32).hex(), "count": count, "label": "iot-gateway"},
                expiry_height=v0.ledger.height + 100,
            )
            v0.submit_and_wait(tx, timeout_s=30)
            records, anchors = records + count, anchors + 1
            time.sleep(max(0.0, started + anchors * window_s - time.perf_counter()))
        blocks = v0.ledger.height - start_height
        time.sleep(0.5)
        grown = _db_bytes(db) - start_bytes
    finally:
        cluster.stop()
    return {
        "bench": "anchoring_storage",
        "record_rate_per_s": RECORD_RATE,
        "anchor_window_s": window_s,
        "min_block_interval_ms": block_gap_ms,
        "records": records,
        "anchor_txs": anchors,
        "blocks": blocks,
        "bytes_per_node_per_record": round(grown / max(records, 1), 1),
        "bytes_per_node_per_block": round(grown / max(blocks, 1), 1),
    }


def _db_bytes(path: Path) -> int:
    """The SQLite database's size once its write-ahead log is checkpointed into it."""
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


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
