"""Single-validator chain: commits per second in-process and over HTTP, batch anchoring rate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._ceiling import ed25519_verifications_per_s
from chain import merkle
from chain.client import ChainClient, Identity
from chain.crypto import SigningKey
from chain.db import make_engine
from chain.genesis import Genesis, parse_genesis
from chain.home import SuiteHome
from chain.ledger import Ledger
from chain.node import Node, NodeOptions
from chain.store import BlockStore
from chain.suites import SuiteKey
from chain.tx import SignatureCache, Tx, sign_tx
from smartcity.demo import init_suite

TXS = int(os.environ.get("BENCH_CHAIN_TXS", "20000"))


def _anchor_txs(key: SuiteKey, chain_id: str, count: int, salt: int = 0) -> list[Tx]:
    return [
        sign_tx(
            key,
            chain_id=chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{salt:016x}{i:048x}", "count": 1, "label": "bench"},
            expiry_height=10_000,
        )
        for i in range(count)
    ]


def _genesis(validator: SigningKey, org: SigningKey) -> Genesis:
    return parse_genesis(
        {
            "chain_id": "bench-chain",
            "genesis_time_ms": 0,
            "validators": [{"name": "v0", "pub_key": validator.public_hex}],
            "organisations": [
                {"id": "city-agency", "name": "A", "roles": ["agency"], "keys": [org.public_hex]}
            ],
        }
    )


def in_process(folder: Path, ceiling: float) -> dict[str, Any]:
    """Transactions admitted (signature checked), executed, certified and committed per second."""
    validator, org = SigningKey.generate(), SigningKey.generate()
    genesis = _genesis(validator, org)
    ledger = Ledger(genesis, BlockStore(make_engine(f"sqlite:///{folder / 'inproc.db'}")))
    node = Node(ledger, key=validator, options=NodeOptions(block_interval_ms=0))
    node.produce_block(allow_empty=True)
    txs = _anchor_txs(org, genesis.chain_id, TXS)
    for tx in txs:
        _ = tx.hash  # signing and encoding are the client's work, not the node's
    started = time.perf_counter()
    for i in range(0, len(txs), 1000):
        node.submit(txs[i : i + 1000])
    while node.mempool:
        node.produce_block()
    elapsed = time.perf_counter() - started
    rate = TXS / elapsed
    return {
        "bench": "commit_in_process",
        "txs": TXS,
        "seconds": round(elapsed, 3),
        "tx_per_s": round(rate, 1),
        "ceiling_verify_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3),
        "target": "tx_per_s >= 0.5 * ceiling",
        "met": rate >= 0.5 * ceiling,
        "blocks": ledger.height,
    }


def over_http(folder: Path, ceiling: float) -> dict[str, Any]:
    """The same through a `smartcity node` process, batches of 1000 over loopback HTTP."""
    genesis = init_suite(folder / "suite", validators=1)
    suite = SuiteHome(folder / "suite")
    key = suite.org_key("city-agency")
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "SMARTCITY_DATABASE_URL": f"sqlite:///{folder / 'http.db'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartcity",
            "node",
            "--home",
            str(folder / "suite" / "nodes" / "validator-0"),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with ChainClient(
            f"http://127.0.0.1:{port}", identity=Identity("city-agency", key), timeout_s=120
        ) as client:
            client.wait_until_ready()
            txs = _anchor_txs(key, genesis.chain_id, TXS, salt=1)
            started = time.perf_counter()
            for i in range(0, len(txs), 1000):
                client.submit_batch(txs[i : i + 1000])
            client.submit_and_wait(txs[-1], timeout_s=120)
            while client.status()["mempool"]:
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    rate = TXS / elapsed
    return {
        "bench": "commit_over_http",
        "txs": TXS,
        "seconds": round(elapsed, 3),
        "tx_per_s": round(rate, 1),
        "ceiling_verify_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(rate / ceiling, 3),
    }


def batch_anchoring(folder: Path, records_per_batch: int, batches: int = 5) -> dict[str, Any]:
    """Records anchored per second: a hash tree per batch, one committed anchor tx each."""
    validator, org = SigningKey.generate(), SigningKey.generate()
    genesis = _genesis(validator, org)
    ledger = Ledger(
        genesis, BlockStore(make_engine(f"sqlite:///{folder / f'batch{records_per_batch}.db'}"))
    )
    node = Node(ledger, key=validator, options=NodeOptions(block_interval_ms=0))
    node.produce_block(allow_empty=True)
    records = [os.urandom(32) for _ in range(records_per_batch * batches)]
    started = time.perf_counter()
    for b in range(batches):
        chunk = records[b * records_per_batch : (b + 1) * records_per_batch]
        root = merkle.root(chunk).hex()
        tx = sign_tx(
            org,
            chain_id=genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": root, "count": len(chunk), "label": "bench"},
            expiry_height=10_000,
        )
        node.submit([tx])
        node.produce_block()
    elapsed = time.perf_counter() - started
    rate = len(records) / elapsed
    return {
        "bench": "records_anchored",
        "records_per_batch": records_per_batch,
        "records": len(records),
        "seconds": round(elapsed, 3),
        "records_per_s": round(rate, 1),
        "target": ">= 100000 records/s",
        "met": rate >= 100_000,
    }


def signature_memory(extra: int = 200_000) -> dict[str, Any]:
    """What remembering a checked signature costs a node before and after its memory is full
    (chain.tx.SignatureCache at its real capacity): a full memory forgets its oldest entry on
    every add, and a long-running node's memory is always full."""
    memory = SignatureCache()
    digests = [os.urandom(32).hex() for _ in range(memory.capacity + extra)]
    started = time.perf_counter()
    for digest in digests[: memory.capacity]:
        memory.add(digest)
    filling = time.perf_counter() - started
    started = time.perf_counter()
    for digest in digests[memory.capacity :]:
        memory.add(digest)
    full = time.perf_counter() - started
    return {
        "bench": "signature_memory",
        "capacity": memory.capacity,
        "add_us_filling": round(1e6 * filling / memory.capacity, 2),
        "add_us_full": round(1e6 * full / extra, 2),
    }


def run() -> list[dict[str, Any]]:
    ceiling = ed25519_verifications_per_s()
    results: list[dict[str, Any]] = [
        {
            "bench": "ed25519_verify_ceiling",
            "verify_per_s": round(ceiling, 1),
            "cores": os.cpu_count(),
        }
    ]
    results.append(signature_memory())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results.append(in_process(folder, ceiling))
        results.append(over_http(folder, ceiling))
        for size in (1_000, 10_000, 100_000):
            results.append(batch_anchoring(folder, size))
    return results
