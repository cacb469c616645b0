"""A test harness: the suite with the road-health service on the embedded chain, and its keys."""

from __future__ import annotations

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
