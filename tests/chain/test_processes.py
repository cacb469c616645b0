"""Four validator processes and an observer on loopback, under load, with real process faults.

kill -9 one validator: the others keep committing; restart it: it catches up and the chains
are identical. SIGSTOP two of four: the chain halts without forking; SIGCONT one: it resumes.
No acknowledged transaction is lost in any of these.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.client import ChainClient, Identity
from chain.errors import ClientError
from chain.genesis import Genesis
from chain.home import SuiteHome
from chain.light import verify_bundle
from chain.tx import sign_tx
from smartcity.demo import init_suite

from ..conftest import free_port, fresh_database_url
from ._blocks import wait_all_committed

pytestmark = pytest.mark.slow


class Net:
    """The processes of one chain, their API clients, and an acknowledged-transaction log."""

    def __init__(self, root: Path, backend: str) -> None:
        self.root = root
        self.genesis: Genesis = init_suite(root / "suite", validators=4, observers=1)
        self.key = SuiteHome(root / "suite").org_key("city-agency")
        self.homes = {p.name: p for p in sorted((root / "suite" / "nodes").iterdir())}
        self.ports = {name: free_port() for name in self.homes}
        self._rewrite_ports()
        self.urls: dict[str, str] = {}
        self.drops: list[Callable[[], None]] = []
        for name in self.homes:
            url, drop = fresh_database_url(backend, root)
            self.urls[name] = url
            self.drops.append(drop)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.acked: list[str] = []
        self._lock = threading.Lock()

    def _rewrite_ports(self) -> None:
        """Free ports for every API and P2P listener (tests run in parallel)."""
        import json

        p2p = {name: free_port() for name in self.homes}
        for name, home in self.homes.items():
            config = json.loads((home / "node.json").read_text())
            config["port"], config["p2p_port"] = self.ports[name], p2p[name]
            for peer in config["peers"]:
                peer["port"] = p2p[peer["name"]]
            (home / "node.json").write_text(json.dumps(config))

    def start(self, name: str) -> None:
        log = (self.root / f"{name}.log").open("ab")
        env = {**os.environ, "SMARTCITY_DATABASE_URL": self.urls[name]}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "smartcity", "node", "--home", str(self.homes[name])],
            env=env,
            stdout=log,
            stderr=log,
        )

    def client(self, name: str) -> ChainClient:
        return ChainClient(
            f"http://127.0.0.1:{self.ports[name]}",
            identity=Identity("city-agency", self.key),
            timeout_s=30,
        )

    def status(self, name: str) -> dict[str, Any]:
        with self.client(name) as c:
            return c.status()

    def wait_ready(self, name: str) -> None:
        with self.client(name) as client:
            client.wait_until_ready()

    def height(self, name: str) -> int:
        return int(self.status(name)["height"])

    def assert_same_chains(self, top: int) -> None:
        """Every node holds the same block at every height up to TOP."""
        clients = {name: self.client(name) for name in self.homes}
        try:
            for height in range(1, top + 1):
                hashes = {name: c.block(height)["hash"] for name, c in clients.items()}
                assert len(set(hashes.values())) == 1, f"chains differ at {height}: {hashes}"
        finally:
            for client in clients.values():
                client.close()

    def load(self, stop: threading.Event, via: str = "validator-0") -> None:
        """Submit batches until told to stop; remember what the node acknowledged."""
        n = 0
        with self.client(via) as c:
            while not stop.is_set():
                n += 1
                txs = [
                    sign_tx(
                        self.key,
                        chain_id=self.genesis.chain_id,
                        contract="anchors",
                        method="anchor",
                        args={"root": f"{n:032x}{j:032x}", "count": 1, "label": "load"},
                        expiry_height=9000,
                    )
                    for j in range(25)
                ]
                try:
                    result = c.submit_batch(txs)
                except ClientError:
                    time.sleep(0.1)
                    continue
                with self._lock:
                    self.acked.extend(
                        r["hash"] for r in result["results"] if r["status"] == "pending"
                    )
                time.sleep(0.05)

    def all_committed(self, via: str, timeout_s: float = 90) -> None:
        """Every acknowledged transaction commits, each in one block only (VIA's blocks)."""
        with self.client(via) as c:
            wait_all_committed(c, self.acked, timeout_s=timeout_s)

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
        for drop in self.drops:
            drop()


def _backends() -> list[str]:
    url = os.environ.get("SMARTCITY_DATABASE_URL", "")
    return ["postgresql"] if url.startswith("postgresql") else ["sqlite"]


@pytest.fixture(params=_backends())
def net(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Net]:
    running = Net(tmp_path, request.param)
    for name in running.homes:
        running.start(name)
    try:
        for name in running.homes:
            running.wait_ready(name)
        yield running
    finally:
        running.stop_all()


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 60, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# One chain goes through both faults in turn: a start-up of five processes costs more than
# either fault, and the first leaves every node caught up with the same chain
def test_kill_9_one_validator_then_two_of_four_stopped(net: Net) -> None:
    kill_9_one_validator_then_restart_it(net)
    two_of_four_stopped_halts_without_forking_then_resumes(net)


def under_load(net: Net) -> tuple[threading.Event, threading.Thread]:
    """Start the load; returns once the chain has committed three more heights under it."""
    stop = threading.Event()
    loader = threading.Thread(target=net.load, args=(stop,), daemon=True)
    start = net.height("validator-0")
    loader.start()
    wait_until(lambda: net.height("validator-0") >= start + 3, what="blocks under load")
    return stop, loader


def kill_9_one_validator_then_restart_it(net: Net) -> None:
    stop, loader = under_load(net)
    net.procs["validator-3"].send_signal(signal.SIGKILL)
    net.procs["validator-3"].wait(timeout=10)
    before = net.height("validator-0")
    wait_until(
        lambda: net.height("validator-0") >= before + 3, what="three validators to keep committing"
    )
    net.start("validator-3")
    net.wait_ready("validator-3")
    time.sleep(1.0)
    stop.set()
    loader.join(timeout=30)
    net.all_committed("validator-0")
    top = net.height("validator-0")
    wait_until(lambda: all(net.height(n) >= top for n in net.homes), what="every node to catch up")
    net.assert_same_chains(top)
    # the regulator's observer serves a proof that verifies offline from the genesis alone
    with net.client("observer-0") as observer:
        proven = verify_bundle(observer.proof(net.acked[0]), net.genesis)
        assert proven.facts["status"] == "ok"
        assert observer.status()["role"] == "observer"


def two_of_four_stopped_halts_without_forking_then_resumes(net: Net) -> None:
    stop, loader = under_load(net)
    for name in ("validator-2", "validator-3"):
        net.procs[name].send_signal(signal.SIGSTOP)
    time.sleep(2.0)  # let the last in-flight height finish
    halted = net.height("validator-0")
    time.sleep(3.0)
    assert net.height("validator-0") == halted, "two of four validators must not commit"
    assert net.height("validator-1") == halted
    net.procs["validator-2"].send_signal(signal.SIGCONT)
    wait_until(lambda: net.height("validator-0") > halted + 1, what="the chain to resume")
    stop.set()
    loader.join(timeout=30)
    net.procs["validator-3"].send_signal(signal.SIGCONT)
    net.all_committed("validator-0")
    top = net.height("validator-0")
    wait_until(lambda: all(net.height(n) >= top for n in net.homes), what="every node to catch up")
    net.assert_same_chains(top)
