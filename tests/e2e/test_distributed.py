"""The compose topology as separate processes on loopback (there is no Docker engine here).

Four validators and the regulator's observer over authenticated TCP, and the three services as
their own processes, each against a different validator through the SDK. Uses PostgreSQL when
SMARTCITY_DATABASE_URL points at one (a fresh schema per process), SQLite otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chain.auth import mint_token
from chain.client import ChainClient, Identity
from chain.errors import ClientError
from chain.home import SuiteHome, init_suite
from chain.light import verify_bundle
from smartcity.registry import SERVICES

from ..conftest import free_port, fresh_database_url

pytestmark = pytest.mark.slow
SERVICE_NODE = {"identity": "validator-0", "credit": "validator-1", "roadhealth": "validator-2"}


class Topology:
    def __init__(self, root: Path, backend: str) -> None:
        self.root = root
        self.suite = root / "suite"
        self.genesis = init_suite(
            self.suite,
            validators=4,
            observers=1,
            contracts=[(e.name, e.contract) for e in SERVICES if e.contract],
        )
        self.nodes = sorted(p.name for p in (self.suite / "nodes").iterdir())
        self.api: dict[str, int] = {name: free_port() for name in [*self.nodes, *SERVICE_NODE]}
        p2p = {name: free_port() for name in self.nodes}
        for name in self.nodes:
            path = self.suite / "nodes" / name / "node.json"
            config = json.loads(path.read_text())
            config["port"], config["p2p_port"] = self.api[name], p2p[name]
            for peer in config["peers"]:
                peer["port"] = p2p[peer["name"]]
            path.write_text(json.dumps(config))
        self.backend = backend
        self.procs: list[subprocess.Popen[bytes]] = []
        self.drops = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.api[name]}"

    def spawn(self, name: str, args: list[str]) -> None:
        database, drop = fresh_database_url(self.backend, self.root)
        self.drops.append(drop)
        log = (self.root / f"{name}.log").open("ab")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "smartcity", *args],
                stdout=log,
                stderr=log,
                env={**os.environ, "SMARTCITY_DATABASE_URL": database},
            )
        )

    def start(self) -> None:
        for name in self.nodes:
            self.spawn(name, ["node", "--home", str(self.suite / "nodes" / name)])
        self.wait(lambda: self.height("validator-0") >= 1, "the chain to start")
        for service, node in SERVICE_NODE.items():
            self.spawn(
                service,
                [
                    "service",
                    service,
                    "--home",
                    str(self.suite),
                    "--node",
                    self.url(node),
                    "--port",
                    str(self.api[service]),
                ],
            )

    def height(self, name: str) -> int:
        key = SuiteHome(self.suite).org_key("regulator")
        with ChainClient(self.url(name), identity=Identity("regulator", key)) as client:
            return int(client.status()["height"])

    def get(self, service: str, path: str, org: str) -> httpx.Response:
        token = mint_token(SuiteHome(self.suite).org_key(org), org=org, audience=service)
        return httpx.get(
            f"{self.url(service)}{path}", headers={"authorization": f"Bearer {token}"}, timeout=30
        )

    @staticmethod
    def wait(condition, what: str, timeout_s: float = 90) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if condition():
                    return
            except (ClientError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.3)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for drop in self.drops:
            drop()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    backend = (
        "postgresql"
        if os.environ.get("SMARTCITY_DATABASE_URL", "").startswith("postgresql")
        else "sqlite"
    )
    running = Topology(tmp_path, backend)
    running.start()
    yield running
    running.stop()


def test_services_as_processes_against_validator_processes(topology: Topology) -> None:
    # each service answers an authenticated caller, and refuses one without a token
    topology.wait(
        lambda: topology.get("roadhealth", "/v1/segments", "road-authority").status_code == 200,
        "road-health to load its demo network",
    )
    segments = topology.get("roadhealth", "/v1/segments", "road-authority").json()
    assert segments["type"] == "FeatureCollection" and len(segments["features"]) >= 10
    topology.wait(
        lambda: topology.get("credit", "/models", "regulator").status_code == 200, "credit to start"
    )
    models = topology.get("credit", "/models", "regulator").json()["models"]
    assert models and models[0]["sha256"]
    topology.wait(
        lambda: topology.get("identity", "/openapi.json", "city-agency").status_code == 200,
        "identity to start",
    )
    assert httpx.get(f"{topology.url('credit')}/models", timeout=10).status_code == 401
    # what the services wrote went through their validators into the one chain the observer holds
    model_key = f"model:{models[0]['sha256']}"
    regulator = SuiteHome(topology.suite).org_key("regulator")
    with ChainClient(
        topology.url("observer-0"), identity=Identity("regulator", regulator)
    ) as observer:
        topology.wait(
            lambda: observer.state("credit", model_key) is not None, "the model on the observer"
        )
        bundle = observer.state_bundle("credit", model_key)
    proven = verify_bundle(bundle, topology.genesis)
    assert proven.facts["present"]
    top = min(topology.height(n) for n in topology.nodes)
    hashes = set()
    for name in topology.nodes:
        with ChainClient(topology.url(name), identity=Identity("regulator", regulator)) as client:
            hashes.add(client.block(top)["hash"])
    assert len(hashes) == 1
