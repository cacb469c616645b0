"""The compose topology as separate processes on loopback (there is no Docker engine here).

Four validators and the regulator's observer over authenticated TCP, and the three services as
their own processes, each against a different validator through the SDK. Uses PostgreSQL when
SMARTCITY_DATABASE_URL points at one (a fresh schema per process), SQLite otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chain.client import ChainClient, Identity
from chain.home import SuiteHome, init_suite
from chain.light import verify_bundle
from smartcity.registry import SERVICES

from ._topology import Topology, backend_from_env

# Real processes, one topology at a time (the `topology_slot` fixture says why); the time limit
# leaves room to wait for the story's topology on a loaded machine
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-topology"),
    pytest.mark.timeout(600),
]
SERVICE_NODE = {"identity": "validator-0", "credit": "validator-1", "roadhealth": "validator-2"}


@pytest.fixture
def topology(tmp_path: Path, topology_slot: None) -> Iterator[Topology]:
    suite = tmp_path / "suite"
    init_suite(
        suite,
        validators=4,
        observers=1,
        contracts=[(e.name, e.contract) for e in SERVICES if e.contract],
    )
    running = Topology(tmp_path, suite, backend_from_env())
    try:
        running.start_nodes()
        running.wait(lambda: running.height("validator-0") >= 1, "the chain to start")
        for service, node in SERVICE_NODE.items():
            running.start_service(service, node)
        yield running
    finally:
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
