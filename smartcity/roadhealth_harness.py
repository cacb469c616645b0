"""A harness for tests and benches: the suite with road health on the embedded chain, and keys.

It composes the suite (smartcity.suite) and drives the sensor simulator (iot_gateway), so it
lives in smartcity, the layer that may import both.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from chain.auth import mint_token
from chain.client import ChainClient, Identity
from chain.crypto import SigningKey, load_key
from chain.errors import ChainError
from chain.home import SuiteHome
from chain.suites import SuiteKey
from chain.tx import sign_tx
from iot_gateway.simulator import Vehicle, build_batch, ingest_body
from services.common.ledger import DEFAULT_TTL_BLOCKS, LedgerPort, RemoteLedger
from smartcity.demo import init_suite
from smartcity.registry import ROADHEALTH, genesis_contracts
from smartcity.suite import Suite, drop_suite_schemas, open_suite

ENTRY = ROADHEALTH


@dataclass
class Harness:
    client: TestClient
    suite: Suite
    data: Path

    def key(self, org: str) -> SigningKey:
        return load_key(self.data / "orgs" / org / "key.jwk")  # the harness's chains are Ed25519

    def auth(self, org: str, audience: str = "roadhealth") -> dict[str, str]:
        return {"authorization": "Bearer " + mint_token(self.key(org), org=org, audience=audience)}

    @property
    def ledger(self) -> Any:
        return self.suite.services["roadhealth"].state.runtime.ctx.ledger

    @property
    def runtime(self) -> Any:
        return self.suite.services["roadhealth"].state.runtime

    def device_tx(self, method: str, args: dict[str, Any]) -> Any:
        tx = sign_tx(
            self.key("road-authority"),
            chain_id=self.ledger.genesis.chain_id,
            contract="roadhealth",
            method=method,
            args=args,
            expiry_height=self.ledger.height() + 100,
        )
        return self.client.post(
            "/roadhealth/v1/devices/tx",
            json={"tx": tx.to_json()},
            headers=self.auth("road-authority"),
        )

    def register(self, device: str, vehicle_class: str, seed: int) -> Vehicle:
        key = SigningKey.from_seed(bytes([seed]) * 32)
        answer = self.device_tx(
            "register_device",
            {"device": device, "pub_key": key.public_hex, "vehicle_class": vehicle_class},
        )
        assert answer.status_code == 200, answer.text
        return Vehicle(device, key, vehicle_class)

    def ingest(self, payloads: list[dict[str, Any]]) -> tuple[dict[str, Any], Any]:
        body = ingest_body(self.ledger, self.key("bsn-operator"), payloads)
        answer = self.client.post(
            "/roadhealth/v1/ingest", json=body, headers=self.auth("bsn-operator")
        )
        return body, answer


@dataclass(frozen=True)
class PotholeScore:
    """Confirmed potholes against planted ones, matched one to one within a tolerance."""

    planted: int
    confirmed: int
    found: int  # planted potholes with a confirmed pothole within tolerance
    precision: float  # share of confirmed potholes that are a planted one (duplicates are not)
    recall: float
    position_errors_m: tuple[float, ...]  # confirmed minus planted chainage, per match


def score_potholes(
    confirmed: list[tuple[str, float]], planted: list[tuple[str, float]], *, tolerance_m: float
) -> PotholeScore:
    """Greedy nearest-first one-to-one matching of (segment, chainage) pairs."""
    pairs = sorted(
        (abs(c[1] - p[1]), i, j)
        for i, c in enumerate(confirmed)
        for j, p in enumerate(planted)
        if c[0] == p[0] and abs(c[1] - p[1]) <= tolerance_m
    )
    used_c: set[int] = set()
    used_p: set[int] = set()
    errors = []
    for _, i, j in pairs:
        if i not in used_c and j not in used_p:
            used_c.add(i)
            used_p.add(j)
            errors.append(confirmed[i][1] - planted[j][1])
    return PotholeScore(
        len(planted),
        len(confirmed),
        len(used_p),
        len(used_c) / len(confirmed) if confirmed else 1.0,
        len(used_p) / len(planted) if planted else 1.0,
        tuple(errors),
    )


def register_devices(h: Harness, network: Any) -> None:
    """Register every vehicle of a simulator network through the road authority's API."""
    for device in network.devices:
        answer = h.device_tx(
            "register_device",
            {
                "device": device.id,
                "pub_key": device.key.public_hex,
                "vehicle_class": device.vehicle_class,
            },
        )
        assert answer.status_code == 200, answer.text


def replay_simulator(
    h: Harness, network: Any, *, batch: int = 50, t0: float = 1.77e9, laps: int = 1
) -> int:
    """Register the simulator's vehicles and ingest what they send while each drives every
    segment `laps` times (iot_gateway.simulator, as `smartcity up --simulate` runs it, minus
    MQTT)."""
    from iot_gateway.simulator import Fleet as SimFleet

    register_devices(h, network)
    fleet = SimFleet(network, seed=network.seed, window_s=4.0)
    payloads: list[dict[str, Any]] = []
    driven = laps * len(network.segments)
    while not all(s.segments_driven >= driven for s in fleet.streams):
        payloads.append(json.loads(fleet.next_message(t0 + 0.25 * len(payloads)).payload))
    for start in range(0, len(payloads), batch):
        _body, answer = h.ingest(payloads[start : start + batch])
        assert answer.status_code == 200, answer.text
    return len(payloads)


@contextmanager
def running(tmp_path: Path, db_url: str) -> Iterator[Harness]:
    data = tmp_path / "data"
    # As `smartcity up` runs it: on SQLite the chain and the service keep separate files (the
    # service writes the chain while its own transaction is open); PostgreSQL is shared.
    # The SQLite run must not fall back to a PostgreSQL named in the environment.
    shared = db_url if db_url.startswith("postgresql") else None
    saved = os.environ.pop("SMARTCITY_DATABASE_URL", None)
    try:
        suite = open_suite(data, database_url=shared, services=[ENTRY])
    finally:
        if saved is not None:
            os.environ["SMARTCITY_DATABASE_URL"] = saved
    with TestClient(suite.app) as client:
        yield Harness(client, suite, data)  # leaving it closes the suite (its dispatcher too)
    if shared is not None:
        drop_suite_schemas(data, shared)  # its nodes' (the suite has stopped)


def register_on_chain(
    ledger: LedgerPort, road_key: SuiteKey, network: Any, *, timeout_s: float = 60.0
) -> None:
    """The road authority registers a simulator network's vehicles on the chain directly (one
    batch of transactions, not one request per device) and waits until the chain has them."""
    expiry = ledger.height() + DEFAULT_TTL_BLOCKS
    txs = [
        sign_tx(
            road_key,
            chain_id=ledger.genesis.chain_id,
            contract="roadhealth",
            method="register_device",
            args={"device": d.id, "pub_key": d.key.public_hex, "vehicle_class": d.vehicle_class},
            expiry_height=expiry,
        )
        for d in network.devices
    ]
    ledger.submit_many(txs)
    _wait_committed(ledger, [tx.hash for tx in txs], timeout_s)


def anchored_bodies(
    ledger: LedgerPort, operator_key: SuiteKey, batches: Sequence[Sequence[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Ingest bodies for batches of payloads, anchored as a gateway anchors them (all anchor
    transactions submitted at once, returned once every one is committed)."""
    built = [build_batch(payloads) for payloads in batches]
    expiry = ledger.height() + DEFAULT_TTL_BLOCKS
    txs = [
        sign_tx(
            operator_key,
            chain_id=ledger.genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": root, "count": len(messages), "label": "iot-gateway", "metadata": {}},
            expiry_height=expiry,
        )
        for root, messages in built
    ]
    ledger.submit_many(txs)
    _wait_committed(ledger, [tx.hash for tx in txs], 60.0)
    return [
        {
            "batch": {"root": root, "anchor_tx": tx.hash, "count": len(messages)},
            "messages": messages,
        }
        for (root, messages), tx in zip(built, txs, strict=True)
    ]


def _wait_committed(ledger: LedgerPort, hashes: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(hashes)
    while waiting:
        waiting = [h for h in waiting if ledger.tx_proof(h) is None]
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} transactions not committed in {timeout_s}s")
        if waiting:
            time.sleep(0.1)


def _any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ProcessStack:
    """A one-validator chain and road-health replicas as processes of their own (`smartcity
    node`, `smartcity service roadhealth`), as compose.yaml runs them; logs in `folder`."""

    folder: Path
    free_port: Callable[[], int] = _any_free_port
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    node_url: str = ""

    @property
    def suite(self) -> Path:
        return self.folder / "suite"

    @property
    def home(self) -> SuiteHome:
        return SuiteHome(self.suite)

    def start_node(self, *, wait: bool = True) -> str:
        """Create the suite (one validator, the roadhealth contract) and run its node."""
        self.folder.mkdir(parents=True, exist_ok=True)
        init_suite(self.suite, contracts=genesis_contracts([ENTRY]))
        path = self.suite / "nodes" / "validator-0" / "node.json"
        config = json.loads(path.read_text())
        config["port"], config["p2p_port"] = self.free_port(), self.free_port()
        path.write_text(json.dumps(config))
        self.spawn("node", ["node", "--home", str(path.parent)])
        self.node_url = f"http://127.0.0.1:{config['port']}"
        if wait:
            self.wait_node()
        return self.node_url

    def wait_node(self, timeout_s: float = 120.0) -> None:
        with self.chain_client("regulator") as client:
            self._wait(lambda: bool(client.status()), "node", timeout_s)

    def chain_client(self, org: str) -> ChainClient:
        return ChainClient(self.node_url, identity=Identity(org, self.home.org_key(org)))

    def ledger(self, org: str) -> RemoteLedger:
        return RemoteLedger(self.chain_client(org), self.home.genesis())

    def start_roadhealth(self, name: str, database_url: str) -> str:
        """Start one road-health replica (not waiting for it); returns its base URL."""
        port = self.free_port()
        args = ["service", "roadhealth", "--home", str(self.suite), "--node", self.node_url]
        self.spawn(name, [*args, "--port", str(port)], env={"SMARTCITY_DATABASE_URL": database_url})
        return f"http://127.0.0.1:{port}"

    def wait_ready(self, name: str, url: str, timeout_s: float = 120.0) -> None:
        """Wait until a process answers 200 on /readyz."""

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(ready, name, timeout_s)

    def spawn(
        self,
        name: str,
        args: list[str],
        *,
        module: str = "smartcity",
        env: dict[str, str] | None = None,
    ) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        # A process gets a database only when given one (the node keeps a SQLite file)
        inherited = {k: v for k, v in os.environ.items() if k != "SMARTCITY_DATABASE_URL"}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=log,
            env={**inherited, **(env or {})},
        )

    def cpu_s(self, name: str) -> float:
        """CPU seconds (user + system) the process has used so far (Linux /proc)."""
        stat = Path(f"/proc/{self.procs[name].pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-chars:]

    def _wait(self, check: Callable[[], bool], name: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if check():
                    return
            except ChainError:
                pass
            process = self.procs[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}:\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not ready in {timeout_s}s:\n{self.log_tail(name)}")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.procs.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.procs.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
