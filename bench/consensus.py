"""BFT consensus: 4 validators in-process and as 4 processes on loopback; the city-scale sim.

Committed transactions per second and commit latency (p50, p99) under a steady open-loop
offered load (batches sent on schedule by CLIENTS threads, latency from the scheduled time),
with the ceiling measured in the same run: Ed25519 verifications per second on
one core (libsodium, as the nodes verify; OpenSSL beside it for comparison; the median of five
one-second timings) times the cores, divided by the validators that verify each transaction (4
processes: each verifies every transaction once; in one process the validators share one
verification). The lone validator runs SINGLE_RUNS times on fresh chains, each against a
ceiling measured just before it, and the run of median ratio is reported.

The process runs share one 4-process network, load spread over its validators: a warm-up at the
ceiling (reported, so the measured runs see a chain of about the same size), saturation (offered
at the ceiling), twice the saturating offered rate (overload: throughput must hold, refusals are
429s at the door, not a collapse), half the saturated rate (the latency figure), then saturation
again. A node's cost per transaction grows with its chain (its state tree deepens, its indexes
outgrow the page cache): each run is on a longer chain than the one before, so the overload
run is compared with saturation on a chain its length, interpolated between the two
saturation runs by the transactions committed before each (against the run before alone, the
growth reads as a fall). Their node
links are TLS 1.3 as deployed (`p2p` says so); BENCH_CONSENSUS_P2P=plaintext runs them over a
demo's plaintext links instead, to measure what encryption costs.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._ceiling import (
    batch_verifications_per_s,
    ed25519_verifications_per_s,
    verification_ceiling,
)
from bench._consensus_more import VALIDATORS as VALIDATORS  # bench.chain_suites reads it here
from bench._consensus_more import (
    _percentiles,
    anchoring_storage,
    city_scale,
    node_threads_cpu_s,
)
from bench._processes import cpu_s, free_node_ports
from chain.auth import AUDIENCE_CHAIN, mint_token
from chain.client import ChainClient, Identity
from chain.cluster import open_cluster
from chain.crypto import verify_with_openssl
from chain.errors import ClientError, TxRejected
from chain.home import SuiteHome, load_node_home
from chain.server import open_node
from chain.suites import DEFAULT_SUITE, SuiteKey
from chain.tx import Tx, sign_tx
from smartcity.demo import init_suite
from smartcity.ops import settle_heap

SECONDS = float(os.environ.get("BENCH_CONSENSUS_SECONDS", "12"))
TICK_S = 0.05
# Clients sending at once: a batch is sent on time even while this many earlier ones wait
CLIENTS = int(os.environ.get("BENCH_CONSENSUS_CLIENTS", "4"))
IN_PROCESS_OFFER = 6_000.0  # tx/s offered to the in-process validators (aim: 3,000 committed)
# The lone validator's runs, each on a fresh chain against its own ceiling: the median reported
SINGLE_RUNS = max(1, int(os.environ.get("BENCH_CONSENSUS_SINGLE_RUNS", "3")))
# The warm-up (a fresh chain) and saturation (the chain it grew) alone: the nodes' CPU per
# transaction on both, for a before/after of one change without the overload and latency runs
GROWTH_ONLY = os.environ.get("BENCH_CONSENSUS_GROWTH_ONLY", "") == "1"
# The process runs' node links: TLS 1.3 as deployed, or `plaintext` (a demo's setting) to
# measure what encryption costs
P2P = os.environ.get("BENCH_CONSENSUS_P2P", "tls")


def _txs(key: SuiteKey, chain_id: str, count: int, salt: int) -> list[Tx]:
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


@dataclass(frozen=True)
class Batch:
    """One request's transactions and, for the process runs, its body encoded in advance."""

    txs: list[Tx]
    body: bytes = b""


def _chunks(txs: list[Tx], rate_per_s: float) -> list[list[Tx]]:
    size = max(1, int(rate_per_s * TICK_S))
    return [txs[i : i + size] for i in range(0, len(txs), size)]


def _offered_load(
    submit: Callable[[Batch], list[Tx]],
    committed_at: Callable[[str, float], float | None],
    batches: list[Batch],
    rate_per_s: float,
) -> dict[str, Any]:
    """Offer the batches open-loop at a steady rate, one every TICK_S, from CLIENTS clients: a
    batch goes out on time while earlier ones still wait for their answers, as a city's many
    callers do (one client waiting for each answer before sending the next made the offered
    rate the door's, not the bench's). Latency runs from a batch's scheduled time, so a batch
    queued behind busy clients counts its wait. `submit` returns what the node admitted, and
    what it refused (429) is counted, not retried. Throughput counts commits within the
    offered window plus the drain of what was admitted."""
    sent_at: dict[str, float] = {}
    admitted: list[Tx] = []
    offered = refused = 0
    started = time.perf_counter()
    in_flight: list[tuple[float, Batch, Future[list[Tx]]]] = []
    with ThreadPoolExecutor(CLIENTS, thread_name_prefix="bench-client") as clients:
        for batch in batches:
            scheduled = started + offered / rate_per_s  # not when sent: the loop may lag it
            in_flight.append((scheduled, batch, clients.submit(submit, batch)))
            offered += len(batch.txs)
            target = started + offered / rate_per_s
            time.sleep(max(0.0, target - time.perf_counter()))
        for scheduled, batch, answer in in_flight:
            accepted = answer.result()
            for tx in accepted:
                sent_at[tx.hash] = scheduled
            admitted.extend(accepted)
            refused += len(batch.txs) - len(accepted)
    offered_s = time.perf_counter() - started
    latencies, last = [], started
    deadline = time.monotonic() + 120
    for tx in admitted:
        at = committed_at(tx.hash, max(0.0, deadline - time.monotonic()))
        if at is not None:
            latencies.append(at - sent_at[tx.hash])
            last = max(last, at)
    elapsed = max(offered_s, last - started)
    return {
        "offered_tx_per_s": round(rate_per_s, 1),
        "offered": offered,
        "refused_429": refused,
        "committed": len(latencies),
        "not_committed_in_120_s": len(admitted) - len(latencies),
        "tx_per_s": round(len(latencies) / elapsed, 1),
        **_percentiles(latencies),
    }


def in_process(
    folder: Path, ceiling: float, rate: float, *, validators: int = VALIDATORS
) -> dict[str, Any]:
    genesis = init_suite(folder / "inproc", validators=validators)
    if validators == 1:
        # A lone validator runs no consensus engine: it produces blocks itself, as
        # `smartcity node` does for a home without peers
        home = load_node_home(folder / "inproc" / "nodes" / "validator-0")
        running = open_node(home)
        start, stop, v0 = running.start, running.stop, running.node
    else:
        cluster = open_cluster(folder / "inproc", empty_block_interval_ms=60_000)
        start, stop, v0 = cluster.start, cluster.stop, cluster.nodes["validator-0"]
    single = validators == 1
    settle_heap()  # as `smartcity up` does before it serves
    start()
    try:
        key = SuiteHome(folder / "inproc").org_key("city-agency")
        txs = _txs(key, genesis.chain_id, int(rate * SECONDS), 1)
        done: dict[str, float] = {}

        def submit(batch: Batch) -> list[Tx]:
            try:
                v0.submit(batch.txs)
            except TxRejected:
                return []
            for tx in batch.txs:
                v0.on_commit(tx.hash, _stamp(done, tx.hash))
            return batch.txs

        def committed_at(tx_hash: str, timeout_s: float) -> float | None:
            end = time.monotonic() + timeout_s
            while tx_hash not in done and time.monotonic() < end:
                time.sleep(0.005)
            return done.get(tx_hash)

        batches = [Batch(chunk) for chunk in _chunks(txs, rate)]
        cpu_s = time.process_time()  # the whole process's (door, validators, waiters) per tx
        threads_before, wall = node_threads_cpu_s(), time.perf_counter()
        result = _offered_load(submit, committed_at, batches, rate)
        cpu_s = time.process_time() - cpu_s
        wall = time.perf_counter() - wall
        result["cpu_us_per_tx"] = round(1e6 * cpu_s / max(result["committed"], 1), 1)
        if single:
            # Cores each node thread kept busy, and the rest (the door's checks on the clients'
            # threads, the clients, the waiters): all of it but the signature checks' C needs
            # the GIL, so the Python threads' sum near one core is the lone validator's bound
            used = {
                name: round((spent - threads_before[name]) / wall, 3)
                for name, spent in node_threads_cpu_s().items()
            }
            used["door_clients_and_rest"] = round(cpu_s / wall - sum(used.values()), 3)
            result["thread_cores"] = used
    finally:
        stop()
    return {
        "bench": "consensus_single_validator" if single else "consensus_in_process",
        "validators": validators,
        "clients": CLIENTS,
        **result,
        "ceiling_tx_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(result["tx_per_s"] / ceiling, 3),
        "aim": ">= 0.8 x one core's verification ceiling" if single else ">= 3000 tx/s",
    }


def single_validator(folder: Path) -> dict[str, Any]:
    """One validator, no peers: its ceiling is one core's verifications (what it must at least
    do per transaction), offered at that rate. Run SINGLE_RUNS times, each on a fresh chain
    in a fresh process, with the ceiling measured just before it (the median of three
    one-second timings): on a shared machine the cores' speed drifted by half within minutes,
    so a ratio against a ceiling measured minutes earlier moved with the drift. The run of
    median ratio (the upper middle one for an even count) is reported; every run's figures
    beside it, in the order they ran, so a drift through the runs shows. Since nodes check
    signatures in batches (chain.zip215) the verification a transaction costs is the batch
    rate's, measured after each run: the ratio to it is reported too (the aim was set against
    the one-at-a-time ceiling, before batches).

    A process of its own, as a lone validator is deployed: in this one, each run found the
    earlier runs' chains in the heap (FastAPI's cache of endpoint functions keeps every app's
    closures, and through them its node), 300 MB a run, and committed less each time."""
    runs = []
    for i in range(SINGLE_RUNS):
        child = subprocess.run(
            [sys.executable, "-c", _SINGLE_RUN, str(folder / f"run-{i}")],
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise RuntimeError(f"lone validator run {i} failed:\n{child.stderr[-4000:]}")
        runs.append(json.loads(child.stdout.splitlines()[-1]))
    by_ratio = sorted(runs, key=lambda r: r["ratio_to_ceiling"])
    return {
        **by_ratio[len(runs) // 2],
        "runs": len(runs),
        "ratio_to_ceiling_runs": [r["ratio_to_ceiling"] for r in runs],
        "tx_per_s_runs": [r["tx_per_s"] for r in runs],
        "ceiling_runs": [r["ceiling_tx_per_s"] for r in runs],
        "verify_per_s_one_core_samples_runs": [r["verify_per_s_one_core_samples"] for r in runs],
        "ratio_to_batch_ceiling_runs": [r["ratio_to_batch_ceiling"] for r in runs],
    }


_SINGLE_RUN = "import sys, json, bench.consensus as b; print(json.dumps(b.single_run(sys.argv[1])))"


def single_run(folder: str) -> dict[str, Any]:
    """One lone-validator run (single_validator runs each in a process of its own)."""
    rate, samples = verification_ceiling(samples=3)
    run = in_process(Path(folder), rate, rate, validators=1)
    run["verify_per_s_one_core_samples"] = [round(r) for r in samples]
    batch_rate = batch_verifications_per_s()
    run["verify_per_s_one_core_batch"] = round(batch_rate)
    run["ratio_to_batch_ceiling"] = round(run["tx_per_s"] / batch_rate, 3)
    return run


def _stamp(done: dict[str, float], tx_hash: str) -> Callable[[Any], None]:
    def record(_receipt: Any) -> None:
        done.setdefault(tx_hash, time.perf_counter())

    return record


class ProcessNetwork:
    """Four `smartcity node` processes on loopback, clients spreading batches over the four
    validators in turn (as the city's organisations each submit to their own node), and a
    follower that records when each transaction commits by reading new blocks (not per-tx
    polls). Request bodies are encoded before the clock starts, so the generator's own work
    during a run is sending bytes: its CPU is reported beside the nodes'. `crypto` is the
    chain's suite (chain/suites; bench/chain_suites.py runs each), its keys signing the load."""

    def __init__(self, folder: Path, *, crypto: str = DEFAULT_SUITE) -> None:
        self.genesis = init_suite(
            folder, validators=VALIDATORS, p2p_plaintext=P2P == "plaintext", crypto=crypto
        )
        homes = sorted((folder / "nodes").iterdir())
        free_node_ports(homes)
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "smartcity", "node", "--home", str(h)],
                env={**os.environ, "SMARTCITY_DATABASE_URL": f"sqlite:///{h / 'bench.db'}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for h in homes
        ]
        self.key = SuiteHome(folder).org_key("city-agency")
        self.identity = Identity("city-agency", self.key)
        self.urls = [f"http://127.0.0.1:{load_node_home(h).settings.port}" for h in homes]
        self.url = self.urls[0]
        for url in self.urls:
            with ChainClient(url, identity=self.identity) as client:
                client.wait_until_ready(timeout_s=180)
        self.http = [httpx.Client(base_url=url, timeout=120) for url in self.urls]
        self._turn = itertools.count()  # next() on it is atomic: clients share it
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, daemon=True)
        self._follower.start()

    def _follow(self) -> None:
        height = 0
        with ChainClient(self.url, identity=self.identity) as f:
            while not self._stop.is_set():
                try:
                    top = int(f.status()["height"])
                    for h in range(height + 1, top + 1):
                        now = time.perf_counter()
                        for tx_hash in f.block(h)["txs"]:
                            self.seen.setdefault(tx_hash, now)
                        height = h
                except ClientError:
                    pass
                time.sleep(0.02)

    def encode(self, chunk: list[Tx]) -> Batch:
        body = json.dumps({"txs": [t.to_json() for t in chunk]}).encode()
        return Batch(chunk, body)

    def submit(self, batch: Batch) -> list[Tx]:
        """POST one pre-encoded batch to the next validator; what it admitted ([] on a 429)."""
        http = self.http[next(self._turn) % len(self.http)]
        token = mint_token(self.key, org=self.identity.org, audience=AUDIENCE_CHAIN)
        response = http.post(
            "/v1/txs/batch",
            content=batch.body,
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        )
        if response.status_code == 429:
            return []
        response.raise_for_status()
        bad = [r for r in response.json()["results"] if r["status"] == "rejected"]
        if bad:
            raise RuntimeError(f"{len(bad)} bench transactions refused: {bad[0]}")
        return batch.txs

    def committed_at(self, tx_hash: str, timeout_s: float) -> float | None:
        end = time.monotonic() + timeout_s
        while tx_hash not in self.seen and time.monotonic() < end:
            time.sleep(0.005)
        return self.seen.get(tx_hash)

    def cpu_s(self) -> float:
        """CPU seconds the four node processes have used (user + system, from /proc)."""
        return sum(cpu_s(proc.pid) for proc in self.procs)

    def run(self, rate: float, salt: int) -> dict[str, Any]:
        txs = _txs(self.key, self.genesis.chain_id, int(rate * SECONDS), salt)
        batches = [self.encode(chunk) for chunk in _chunks(txs, rate)]
        cpu_before, own_before = self.cpu_s(), time.process_time()
        result = _offered_load(self.submit, self.committed_at, batches, rate)
        cpu = self.cpu_s() - cpu_before
        result["load_generator_cpu_s"] = round(time.process_time() - own_before, 2)
        result["nodes_cpu_s"] = round(cpu, 2)
        # Load-independent cost: all four nodes' CPU per committed transaction, and what the
        # machine's cores could commit at that cost (a bound, not a measurement)
        per_tx_ms = 1000 * cpu / max(result["committed"], 1)
        cores = os.cpu_count() or 1
        result["nodes_cpu_ms_per_tx"] = round(per_tx_ms, 3)
        result["cpu_bound_tx_per_s"] = round(cores * 1000 / per_tx_ms, 1)
        return result

    def close(self) -> None:
        self._stop.set()
        for http in self.http:
            http.close()
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(timeout=30)


def processes(folder: Path, ceiling: float) -> list[dict[str, Any]]:
    network = ProcessNetwork(folder)
    try:
        # A chain's first tens of thousands of transactions deepen its state tree and indexes
        # fastest: grow it first so the three measured runs see about the same chain (the
        # last of them otherwise runs on a chain several times the first's)
        warm = network.run(ceiling, salt=1)
        saturated = network.run(ceiling, salt=2)
        if GROWTH_ONLY:
            return [
                {"bench": f"consensus_processes_{name}", "ceiling_tx_per_s": round(ceiling, 1), **r}
                for name, r in (("warm_up", warm), ("saturation", saturated))
            ]
        overload = network.run(2 * ceiling, salt=4)
        half = network.run(max(1.0, saturated["tx_per_s"] / 2), salt=3)
        after = network.run(ceiling, salt=5)  # last: the other runs see the chains they saw
    finally:
        network.close()
    sat = max(saturated["tx_per_s"], 1e-9)
    bracket = max(_saturation_at_overload(warm, saturated, overload, half, after), 1e-9)
    common = {
        "validators": VALIDATORS,
        "clients": CLIENTS,
        "p2p": P2P,
        "ceiling_tx_per_s": round(ceiling, 1),
    }
    return [
        {"bench": "consensus_processes_warm_up", **common, **warm},
        {
            "bench": "consensus_processes_saturation",
            **common,
            **saturated,
            "ratio_to_ceiling": round(saturated["tx_per_s"] / ceiling, 3),
            "aim": ">= 2000 tx/s",
        },
        {
            "bench": "consensus_processes_half_load",
            **common,
            **half,
            "aim": "p99 < 1000 ms",
        },
        {
            "bench": "consensus_processes_overload",
            **common,
            **overload,
            "saturation_at_its_chain_tx_per_s": round(bracket, 1),
            "ratio_to_saturation": round(overload["tx_per_s"] / bracket, 3),
            "ratio_to_saturation_before": round(overload["tx_per_s"] / sat, 3),
            "aim": ">= 0.9 x saturation",
        },
        {"bench": "consensus_processes_saturation_after", **common, **after},
    ]


def _saturation_at_overload(*runs: dict[str, Any]) -> float:
    """Saturation on a chain the overload run's length: the two saturation runs' throughput
    interpolated linearly in chain length, each run placed at the middle of the transactions
    it committed (runs in the order warm-up, saturation, overload, half load, saturation)."""
    warm, saturated, overload, half, after = (r["committed"] for r in runs)
    at_saturation = warm + saturated / 2
    at_overload = warm + saturated + overload / 2
    at_after = warm + saturated + overload + half + after / 2
    share = (at_overload - at_saturation) / max(at_after - at_saturation, 1)
    before, later = runs[1]["tx_per_s"], runs[4]["tx_per_s"]
    return float(before + (later - before) * share)


def run() -> Iterator[dict[str, Any]]:
    """Results as they are measured (python -m bench prints each at once)."""
    cores = os.cpu_count() or 1
    verify_rate, verify_samples = verification_ceiling()
    openssl_rate = ed25519_verifications_per_s(check=verify_with_openssl)
    ceiling = verify_rate * cores / VALIDATORS
    shared_ceiling = verify_rate * cores
    yield {
        "bench": "consensus_ceiling",
        "verify_per_s_one_core": round(verify_rate, 1),
        "verify_per_s_one_core_samples": [round(r) for r in verify_samples],
        "verify_per_s_one_core_openssl": round(openssl_rate, 1),
        # what a node's verification worker does now: whole batches in one multiplication
        "verify_per_s_one_core_batch": round(batch_verifications_per_s(), 1),
        "cores": cores,
        "ceiling_tx_per_s": round(ceiling, 1),
        "ceiling_in_process_tx_per_s": round(shared_ceiling, 1),
    }
    only = os.environ.get("BENCH_CONSENSUS_ONLY", "")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if only in ("", "processes"):
            yield from processes(folder / "procs", ceiling)
        if only in ("", "in_process"):
            # Offered at the aim's double, not the shared ceiling (~20,000/s): signing the
            # load for a higher rate would take longer than the run itself
            rate = min(shared_ceiling, IN_PROCESS_OFFER)
            yield in_process(folder / "ip", shared_ceiling, rate)
        if only in ("", "single"):
            yield single_validator(folder / "single")
    if only in ("", "storage"):
        with tempfile.TemporaryDirectory() as tmp:
            for window_s, gap_ms in ((0.2, 0), (1.0, 100)):
                yield anchoring_storage(Path(tmp) / f"s{gap_ms}", window_s, gap_ms)
    if only in ("", "sim"):
        yield city_scale()
