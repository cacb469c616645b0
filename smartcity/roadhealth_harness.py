"""A harness for tests and benches: the suite with road health on the embedded chain, and keys.

It composes the suite (smartcity.suite) and drives the sensor simulator (iot_gateway), so it
lives in smartcity, the layer that may import both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from chain.auth import mint_token
from chain.crypto import SigningKey
from chain.home import SuiteHome
from chain.tx import sign_tx
from services.roadhealth.fleet import Vehicle, ingest_body
from smartcity.registry import ServiceEntry
from smartcity.suite import Suite, open_suite

ENTRY = ServiceEntry(
    "roadhealth",
    "services.roadhealth.app:create_app",
    "services.roadhealth.contract:RoadHealthContract",
)


@dataclass
class Harness:
    client: TestClient
    suite: Suite
    data: Path

    def key(self, org: str) -> SigningKey:
        return SuiteHome(self.data).org_key(org)

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


def replay_simulator(h: Harness, network: Any, *, batch: int = 50, t0: float = 1.77e9) -> int:
    """Register the simulator's vehicles and ingest what they send while each drives every
    segment once (iot_gateway.simulator, as `smartcity up --simulate` runs it, minus MQTT)."""
    from iot_gateway.simulator import Fleet as SimFleet

    register_devices(h, network)
    fleet = SimFleet(network, seed=network.seed, window_s=4.0)
    payloads: list[dict[str, Any]] = []
    while not all(s.segments_driven >= len(network.segments) for s in fleet.streams):
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
        yield Harness(client, suite, data)
    suite.services["roadhealth"].state.dispatcher.stop()
