"""`smartcity up --simulate`: the suite's own broker, gateway and sensors feed road-health."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from chain.auth import mint_token
from chain.encoding import canonical, sha256
from chain.home import SuiteHome
from chain.light import verify_bundle
from iot_gateway.source import BrokerAddress
from smartcity.iot import start_iot
from smartcity.suite import open_suite


def test_start_iot_feeds_simulated_readings_that_prove_to_a_committed_block(
    tmp_path: Path, live_server: Any
) -> None:
    suite = open_suite(tmp_path / "data")
    genesis = suite.node.ledger.genesis
    home = SuiteHome(tmp_path / "data")
    with live_server(suite.app) as server:
        handle = start_iot(
            suite, simulate=True, base_url=server.url, city=f"up{uuid.uuid4().hex[:8]}"
        )
        try:
            assert handle.simulator is not None
            devices = [d.id for d in handle.simulator.network.devices]
            token = mint_token(
                home.org_key("road-authority"), org="road-authority", audience="roadhealth"
            )
            client = httpx.Client(
                base_url=f"{server.url}/roadhealth",
                headers={"authorization": f"Bearer {token}"},
                timeout=10,
            )
            # Within a bounded time road-health holds the first reading of every device
            proofs: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 60
            while len(proofs) < len(devices) and time.monotonic() < deadline:
                assert handle.simulator.error is None, handle.simulator.error
                for device in set(devices) - set(proofs):
                    response = client.get(f"/v1/readings/{device}/1/proof")
                    if response.status_code == 200:
                        proofs[device] = response.json()
                time.sleep(0.2)
            assert set(proofs) == set(devices), f"readings of {set(devices) - set(proofs)} missing"

            for device, proof in proofs.items():
                # ... each from the device's signature to a block the validators committed
                assert proof["payload"]["device"] == device and proof["signature_valid"]
                assert sha256(canonical(proof["payload"])).hex() == proof["message_hash"]
                proven = verify_bundle(proof["bundle"], genesis)
                assert proven.kind == "record"
                assert proof["bundle"]["record"]["hash"] == proof["message_hash"]
                key = verify_bundle(proof["device_bundle"], genesis)
                assert key.kind == "state"
                assert proof["device_bundle"]["value"]["pub_key"] == proof["device"]["pub_key"]
            listed = {d["device"]: d for d in client.get("/v1/devices").json()}
            assert all(listed[d]["status"] == "active" for d in devices)
            assert handle.gateway.metrics.total("rejected_total") == 0
            assert httpx.get(f"{handle.health_url}/healthz", timeout=5).status_code == 200
        finally:
            handle.stop()

    # Everything stopped: no simulator, no gateway connection, our broker's port closed
    assert handle.simulator is not None and not handle.simulator.alive
    assert not handle.gateway.is_healthy()
    if handle.embedded_broker is not None:
        assert not BrokerAddress.parse(handle.broker_url).reachable(timeout_s=0.5)
