"""Validator processes behind a cuttable proxy, and a client offering them a steady load.

Only public surfaces are used: `init_suite` makes the homes, each node's settings file gets free
ports and peer addresses that point at the proxy, `smartcity node --home` runs each node with a
database of its own (a SQLite file, or a fresh PostgreSQL schema when SMARTCITY_DATABASE_URL
names one), and everything else goes through the HTTP API with `chain.client`.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, inspect, text

from chain.auth import AUDIENCE_CHAIN, mint_token
from chain.client import ChainClient, Identity
from chain.errors import ClientError
from chain.genesis import Genesis
from chain.journal import MEMPOOL_FOLDER, Journal
from chain.suites import load_any_key
from chain.tx import Tx, sign_tx
from smartcity.demo import init_suite

from ..conftest import free_port, fresh_database_url
from ._netproxy import NetProxy

ORG = "city-agency"
LOG_TAIL_CHARS = 2500
STATUS_TIMEOUT_S = 3.0
SUBMIT_TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 15.0
GAUGES = (
    "smartcity_chain_height",
    "smartcity_consensus_round",
    "smartcity_mempool_size",
    "smartcity_p2p_peers",
)
EXPIRY_HEIGHT = 5000  # far ahead of any height a run reaches, within the genesis TTL


class RetryAfter(httpx.BaseTransport):
    """Answers 429 and 503 by waiting the node's Retry-After and asking again (bounded).

    Submitting is idempotent (a transaction is named by its hash), so asking again is safe.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        *,
        attempts: int = 20,
        default_s: float = 0.5,
        max_wait_s: float = 5,
    ) -> None:
        self._inner = inner or httpx.HTTPTransport()
        self.attempts = attempts
        self.default_s = default_s
        self.max_wait_s = max_wait_s
        self.backoffs = 0  # how often a node asked us to come back later

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(self.attempts - 1):
            response = self._inner.handle_request(request)
            if response.status_code not in (429, 503):
                return response
            wait_s = self._wait_s(response.headers.get("retry-after"))
            response.close()
            self.backoffs += 1
            time.sleep(wait_s)
        return self._inner.handle_request(request)

    def _wait_s(self, value: str | None) -> float:
        """Retry-After in seconds or as an HTTP date; the default when absent or unreadable."""
        if value is None:
            return self.default_s
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = self.default_s
        return min(max(seconds, 0.0), self.max_wait_s)

    def close(self) -> None:
        self._inner.close()


class Cluster:
    """N validators as `smartcity node` processes whose P2P links all pass through a NetProxy."""

    def __init__(
        self,
        root: Path,
        backend: str,
        validators: int = 4,
        mempool_capacity: dict[str, int] | None = None,
        capture_bytes: int = 0,
        crypto: str = "ed25519-sha256",
    ) -> None:
        self.root = root
        self.suite = root / "suite"
        self.genesis: Genesis = init_suite(self.suite, validators=validators, crypto=crypto)
        self.key = load_any_key(self.suite / "orgs" / ORG / "key.jwk")
        self.names = sorted(p.name for p in (self.suite / "nodes").iterdir())
        self.proxy = NetProxy(capture_bytes)
        self.api = {name: free_port() for name in self.names}
        self._route_peers_through_proxy(mempool_capacity or {})
        self.urls: dict[str, str] = {}
        self._drops: list[Callable[[], None]] = []
        for name in self.names:
            url, drop = fresh_database_url(backend, root)
            self.urls[name] = url
            self._drops.append(drop)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.down: set[str] = set()  # killed or paused on purpose: not answering
        self._clients: dict[str, ChainClient] = {}

    def _route_peers_through_proxy(self, mempool_capacity: dict[str, int]) -> None:
        """Free ports, peers reached through the proxy, and any mempool capacity asked for."""
        p2p = {name: free_port() for name in self.names}
        for name in self.names:
            path = self.suite / "nodes" / name / "node.json"
            config = json.loads(path.read_text())
            config["port"], config["p2p_port"] = self.api[name], p2p[name]
            if name in mempool_capacity:
                config["mempool_capacity"] = mempool_capacity[name]
            for peer in config["peers"]:
                peer["host"] = "127.0.0.1"
                peer["port"] = self.proxy.add_link(name, peer["name"], p2p[peer["name"]])
            path.write_text(json.dumps(config))

    # -- processes -------------------------------------------------------------------------

    def start(self, name: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        env = {**os.environ, "SMARTCITY_DATABASE_URL": self.urls[name]}
        home = self.suite / "nodes" / name
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "smartcity", "node", "--home", str(home)],
            env=env,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.down.add(name)  # until its API answers (wait_ready)

    def kill(self, name: str) -> None:
        """kill -9: no chance to flush, close or say goodbye."""
        self.down.add(name)
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def pause(self, name: str) -> None:
        self.down.add(name)
        self.procs[name].send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGCONT)
        self.down.discard(name)

    def wait_ready(self, name: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(ClientError):
                self.height(name)
                self.down.discard(name)
                return
            if self.procs[name].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name} did not start\n{self.logs([name])}")
            time.sleep(0.2)

    def wipe_mempool(self, name: str) -> int:
        """Empty a stopped node's persisted pending transactions (its journal's segments, and
        any rows its store holds from before the journal); returns how many went."""
        assert self.procs[name].poll() is not None, "wipe a node's mempool only while it is down"
        journal = Journal(self.suite / "nodes" / name / MEMPOOL_FOLDER)
        wiped = len(journal.read())
        for segment in journal.segments():
            segment.unlink()
        engine = create_engine(self.urls[name])
        try:
            with engine.begin() as conn:
                tables = [t for t in inspect(conn).get_table_names() if "pending" in t]
                assert tables, f"{name}'s database has no pending-transactions table"
                for table in tables:
                    wiped += conn.execute(text(f'DELETE FROM "{table}"')).rowcount
        finally:
            engine.dispose()
        return wiped

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for client in self._clients.values():
            client.close()
        self.proxy.close()
        for drop in self._drops:
            with contextlib.suppress(Exception):
                drop()

    def logs(self, names: list[str] | None = None) -> str:
        """Each node's consensus gauges, the tail of its log (without the access log) and, where
        py-spy is installed, where its threads are (so a stalled run names its cause)."""
        out = [f"consensus: {self.consensus()}", *self._stacks()]
        for name in names or self.names:
            path = self.root / f"{name}.log"
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            tail = "\n".join(line for line in lines if "uvicorn.access" not in line)
            tail = tail[-LOG_TAIL_CHARS:]
            code = self.procs[name].poll() if name in self.procs else None
            out.append(f"--- {name}.log (exit {code}) ---\n{tail}")
        return "\n".join(out)

    def _stacks(self) -> list[str]:
        spy = shutil.which("py-spy")
        if spy is None:
            return []
        out = []
        for name, proc in self.procs.items():
            if proc.poll() is None and name not in self.down:
                dump = subprocess.run(
                    [spy, "dump", "--pid", str(proc.pid)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                out.append(f"--- {name} threads ---\n{dump.stdout[-6000:]}{dump.stderr[-500:]}")
        return out

    # -- the API ---------------------------------------------------------------------------

    def client(self, name: str) -> ChainClient:
        if name not in self._clients:
            self._clients[name] = ChainClient(
                f"http://127.0.0.1:{self.api[name]}",
                identity=Identity(ORG, self.key),
                timeout_s=STATUS_TIMEOUT_S,
            )
        return self._clients[name]

    def height(self, name: str) -> int:
        return int(self.client(name).status()["height"])

    def heights(self) -> dict[str, int]:
        """Heights of the nodes that are up (a paused node would only time out)."""
        out = {}
        for name in self.names:
            if name not in self.down:
                with contextlib.suppress(ClientError):
                    out[name] = self.height(name)
        return out

    def consensus(self) -> dict[str, dict[str, float]]:
        """Height, round, mempool and peers from each live node's /metrics (for diagnosis)."""
        out: dict[str, dict[str, float]] = {}
        for name in self.names:
            if name in self.down:
                continue
            try:
                page = httpx.get(f"http://127.0.0.1:{self.api[name]}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            gauges = out.setdefault(name, {})
            for line in page.splitlines():
                metric, value = line.partition("{")[0], line.rpartition(" ")[2]
                if metric in GAUGES:
                    gauges[metric.removeprefix("smartcity_")] = float(value)
        return out

    def block(self, name: str, height: int) -> dict[str, Any]:
        return self.client(name).block(height)

    def blocks(self, name: str, first: int, last: int) -> list[dict[str, Any]]:
        """Blocks FIRST..LAST as NAME's event stream replays them (height, hash, tx_count,
        events): one request instead of one per block, with a read timeout."""
        token = mint_token(self.key, org=ORG, audience=AUDIENCE_CHAIN)
        out: list[dict[str, Any]] = []
        with httpx.stream(
            "GET",
            f"http://127.0.0.1:{self.api[name]}/v1/events",
            params={"from_height": first},
            headers={"authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(STREAM_TIMEOUT_S),
        ) as response:
            response.raise_for_status()
            kind = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:") and kind == "block":
                    block = json.loads(line.partition(":")[2])
                    if block["height"] > last:
                        break
                    out.append(block)
                    if block["height"] == last:
                        break
        return out

    def tx_status(self, name: str, tx_hash: str) -> str:
        """`committed`, `pending` or `unknown` as NAME sees it."""
        try:
            return str(self.client(name).tx(tx_hash)["status"])
        except ClientError as exc:
            if exc.status == 404:
                return "unknown"
            raise


@dataclass
class Acked:
    node: str
    at: float  # time.monotonic() of the 2xx answer


@dataclass
class Load:
    """A client offering signed anchor transactions round-robin to the nodes that are up.

    An answer of `pending` or `duplicate` is an acknowledgement by that node. A batch whose
    answer is lost (the node died or the call timed out) is offered again, unchanged, to the next
    node, as a client does when it does not know whether it was heard.
    """

    cluster: Cluster
    batch: int = 5
    interval_s: float = 0.1
    offered: dict[str, Tx] = field(default_factory=dict)
    acked: dict[str, Acked] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # hash -> code
    lost_answers: int = 0  # calls with no usable answer: node down, timed out, still pushing back
    busy_with: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _transports: list[RetryAfter] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._salt = uuid.uuid4().hex[:16]
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._clients = {name: self._client(name) for name in self.cluster.names}

    def _client(self, name: str) -> ChainClient:
        transport = RetryAfter()
        self._transports.append(transport)
        return ChainClient(
            f"http://127.0.0.1:{self.cluster.api[name]}",
            identity=Identity(ORG, self.cluster.key),
            transport=transport,
            timeout_s=SUBMIT_TIMEOUT_S,
        )

    @property
    def backoffs(self) -> int:
        return sum(t.backoffs for t in self._transports)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=SUBMIT_TIMEOUT_S * 3)
        for client in self._clients.values():
            client.close()

    def avoid(self, name: str, timeout_s: float = SUBMIT_TIMEOUT_S + 2) -> None:
        """Wait until no call to NAME is in flight (call after marking NAME down)."""
        deadline = time.monotonic() + timeout_s
        while self.busy_with == name and time.monotonic() < deadline:
            time.sleep(0.01)

    def acked_by(self, name: str, since: float = 0.0) -> set[str]:
        """What NAME acknowledged (first) at or after SINCE (a time.monotonic())."""
        with self._lock:
            return {h for h, a in self.acked.items() if a.node == name and a.at >= since}

    def acked_before(self, moment: float) -> set[str]:
        with self._lock:
            return {h for h, a in self.acked.items() if a.at <= moment}

    def _run(self) -> None:
        targets = itertools.cycle(self.cluster.names)
        for n in itertools.count():
            if self._stop.is_set():
                return
            txs = [self._sign(n * self.batch + j) for j in range(self.batch)]
            with self._lock:
                self.offered.update((t.hash, t) for t in txs)
            self._offer(txs, targets)
            self._stop.wait(self.interval_s)

    def _sign(self, seq: int) -> Tx:
        return sign_tx(
            self.cluster.key,
            chain_id=self.cluster.genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{self._salt}{seq:048x}", "count": 1, "label": "perturbation"},
            expiry_height=EXPIRY_HEIGHT,
        )

    def _offer(self, txs: list[Tx], targets: itertools.cycle[str]) -> None:
        for _ in range(4 * len(self.cluster.names)):
            if self._stop.is_set():
                return
            name = next(targets)
            if name in self.cluster.down:
                continue
            self.busy_with = name
            try:
                result = self._clients[name].submit_batch(txs)
            except ClientError:
                self.lost_answers += 1
                continue
            finally:
                self.busy_with = None
            self._record(name, txs, result)
            return

    def _record(self, name: str, txs: list[Tx], result: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._lock:
            for tx, item in zip(txs, result["results"], strict=True):
                if item["status"] in ("pending", "duplicate"):
                    self.acked.setdefault(tx.hash, Acked(name, now))
                elif item.get("code") != "tx_replayed":  # replayed: committed, so heard before
                    self.refused[tx.hash] = str(item.get("code"))
