"""The product's story end to end, as separate processes on loopback (issue 8, "End to end").

`smartcity init` makes a chain of 4 validators and the regulator's observer; each runs as its own
process, as do the identity, credit and road-health services and the IoT gateway. Each service
answers an authenticated caller through its own validator and refuses an anonymous one, and what
they write reaches the observer (the compose topology on loopback). Then: a new agency is
admitted by governance and becomes an issuer; a citizen and an SME get credentials;
the SME is rated; a bank is refused without consent, gets it, reads the rating and verifies
its proof offline; a validator is killed with SIGKILL, after which everything the story still
commits needs all three remaining validators; simulated vehicles find a planted pothole through
MQTT, the gateway and road health, which alerts a webhook; the observer holds the same chain.

PostgreSQL and Mosquitto when SMARTCITY_DATABASE_URL and SMARTCITY_MQTT_URL name them (.ci/run),
SQLite and the embedded amqtt broker otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from jwcrypto import jwk

from chain.client import ChainClient
from chain.errors import ProofError
from chain.light import verify_bundle
from chain.suites import suite_for
from chain.tx import sign_tx
from iot_gateway.broker import start_embedded_broker
from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, Network, build_network, default_geojson_path
from iot_gateway.simulator.messages import with_suite_keys
from iot_gateway.source import BrokerAddress
from services.common.ledger import RemoteLedger
from services.credit import demo_uscc, sdk, statement_csv, synthetic_statements
from services.identity import sd_jwt
from smartcity.cli import main as smartcity
from smartcity.iot import register_devices

from ..conftest import AlertReceiver, free_port
from ._topology import Topology, backend_from_env

# One topology at a time (see the `topology_slot` fixture); the time limit leaves room to wait
# for test_perturbation's cluster on a loaded machine
pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-topology"),
    pytest.mark.timeout(600),
]

SERVICE_NODE = {"identity": "validator-0", "credit": "validator-1", "roadhealth": "validator-2"}
GATEWAY_NODE = "validator-0"
KILLED = "validator-3"  # no service uses it: the story goes on through the other three
AGENCY = "health-bureau"  # not in genesis: admitted by governance during the story
PROPOSER, VOTER = "city-agency", "regulator"  # 2 of the 3 committee members: more than half
SME_ORG, BANK = "sme-demo", "bank-a"
SEGMENT = "central-ave-2"  # the demo segment with the planted pothole
VEHICLES = 4  # road health confirms a pothole seen by 3 distinct vehicles
SIM_SEED = 3
POTHOLE_RADIUS_M = 5.0  # a confirmed pothole this close to the planted one found it
RESIDENCE_SCHEMA = {
    "type": "object",
    "properties": {
        "givenName": {"type": "string", "minLength": 1},
        "familyName": {"type": "string", "minLength": 1},
        "birthDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "address": {"type": "object"},
    },
    "required": ["givenName", "familyName", "birthDate", "address"],
    "additionalProperties": False,
}
BUSINESS_SCHEMA = {
    "type": "object",
    "properties": {"legalName": {"type": "string"}, "uscc": {"type": "string"}},
    "required": ["legalName", "uscc"],
    "additionalProperties": False,
}
CITIZEN = {
    "givenName": "Mei",
    "familyName": "Chen",
    "birthDate": "1990-04-02",
    "address": {"street": "1 Harbour Rd", "city": "Metropolis"},
}


# -- fixtures: what runs beside the processes ----------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[AlertReceiver]:
    """A road authority's alert receiver."""
    receiver = AlertReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def broker_url() -> Iterator[str]:
    """Mosquitto at SMARTCITY_MQTT_URL when it answers, else the embedded broker, as `up` does."""
    url = os.environ.get("SMARTCITY_MQTT_URL")
    if url and BrokerAddress.parse(url).reachable():
        yield url
        return
    broker = start_embedded_broker(free_port())
    yield broker.url
    broker.close()


@pytest.fixture
def launched(topology_slot: None) -> Iterator[list[Topology]]:
    """Topologies the story starts; every process is stopped and every schema dropped after."""
    running: list[Topology] = []
    yield running
    for topology in running:
        topology.stop()


# -- helpers -------------------------------------------------------------------------------------


@contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    """Name the story's step in any failure, and time it."""
    started = time.monotonic()
    try:
        yield
    except BaseException as exc:
        exc.add_note(f"in story step: {name}")
        raise
    timings[name] = round(time.monotonic() - started, 1)
    print(f"story step {name}: {timings[name]} s")


def cli(*args: str, module: str = "smartcity") -> subprocess.CompletedProcess[str]:
    """A command as a user types it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120
    )


def transact(topo: Topology, org: str, contract: str, method: str, args: dict[str, Any]) -> Any:
    """ORG signs a call with its own key and submits it through validator-0; its receipt."""
    key = topo.home.org_key(org)
    with topo.client("validator-0", org) as client:
        tx = sign_tx(
            key,
            chain_id=topo.genesis.chain_id,
            contract=contract,
            method=method,
            args=args,
            expiry_height=int(client.status()["height"]) + 100,
        )
        return client.submit_and_wait(tx)


def govern(topo: Topology, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """The committee passes a proposal: one member proposes (still open), another approves."""
    proposed = transact(
        topo, PROPOSER, "governance", "propose", {"action": action, "params": params}
    )
    assert proposed["status"] == "ok", proposed
    pid = proposed["tx"]
    with topo.client("validator-0") as client:
        assert client.state("governance", f"proposal:{pid}")["status"] == "open"
    voted = transact(topo, VOTER, "governance", "vote", {"proposal": pid, "approve": True})
    assert voted["status"] == "ok", voted
    with topo.client("validator-0") as client:
        proposal = client.state("governance", f"proposal:{pid}", verify_with=topo.genesis)
    assert proposal["status"] == "executed", proposal
    assert proposal["approvals"] == [PROPOSER, VOTER]
    return dict(proposal)


def expect(response: httpx.Response, status: int) -> Any:
    """The answer's JSON, once its status is the one a user expects (else its text)."""
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> str:
    """The refusal's status and code; returns its message for the reason."""
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text
    return str(response.json()["error"]["message"])


# -- the story's steps ---------------------------------------------------------------------------


def genesis(root: Path, launched: list[Topology], broker_url: str, city: str) -> Topology:
    """1. `smartcity init` (4 validators + observer); every process starts, the chain advances."""
    args = ["init", "--out", str(root / "suite"), "--validators", "4", "--observers", "1"]
    # SMARTCITY_STORY_CRYPTO=sm2-sm3 tells the same story on the national suite (CONTRIBUTING.md)
    args += ["--crypto", os.environ.get("SMARTCITY_STORY_CRYPTO", "ed25519-sha256")]
    made = CliRunner().invoke(smartcity, [*args, "--chain-id", f"story-{uuid.uuid4().hex[:8]}"])
    assert made.exit_code == 0, made.output
    assert "genesis" in made.output and "observer-0" in made.output, made.output
    topo = Topology(root, root / "suite", backend_from_env())
    launched.append(topo)
    assert [v.name for v in topo.genesis.validators] == [f"validator-{i}" for i in range(4)]
    assert [o.name for o in topo.genesis.observers] == ["observer-0"]
    topo.start_nodes()
    for service, node in SERVICE_NODE.items():
        topo.start_service(service, node, env={"SMARTCITY_CITY": city})
    topo.start_gateway(node=GATEWAY_NODE, broker_url=broker_url, city=city, tag=city)
    topo.wait(
        lambda: min(topo.height(n) for n in topo.nodes) >= 1, "every node to commit a first block"
    )
    return topo


def services_answer(topo: Topology) -> None:
    """1b. Each service answers an authenticated caller and refuses an anonymous one; the model
    credit registered through validator-1 is proven on the observer; all five nodes agree."""
    segments = topo.wait(
        lambda: answer(topo.get("roadhealth", "/v1/segments", "road-authority")),
        "road-health to load its demo network",
    )
    assert segments["type"] == "FeatureCollection" and len(segments["features"]) >= 10
    models = topo.wait(
        lambda: (answer(topo.get("credit", "/models", "regulator")) or {}).get("models"),
        "credit to register its model",
    )
    assert models[0]["sha256"]
    topo.wait(
        lambda: topo.get("identity", "/openapi.json", "city-agency").status_code == 200,
        "identity to start",
    )
    assert topo.call("GET", "credit", "/models", None).status_code == 401
    model_key = f"model:{models[0]['sha256']}"
    with topo.client("observer-0") as observer:
        topo.wait(
            lambda: observer.state("credit", model_key) is not None, "the model on the observer"
        )
        bundle = observer.state_bundle("credit", model_key)
    assert verify_bundle(bundle, topo.genesis).facts["present"]
    top = min(topo.height(n) for n in topo.nodes)
    hashes = set()
    for name in topo.nodes:
        with topo.client(name) as client:
            hashes.add(client.block(top)["hash"])
    assert len(hashes) == 1, f"the nodes differ at height {top}"


def answer(response: httpx.Response) -> Any:
    """The JSON of a 200 answer, else None (a service still starting)."""
    return response.json() if response.status_code == 200 else None


def admit_agency(topo: Topology) -> None:
    """2. A new agency is admitted by governance; issuing is refused until it is an issuer."""
    suite = suite_for(topo.genesis.crypto)  # the chain's suite: an SM chain takes SM2 keys only
    key = suite.generate()
    # Demo custody: the identity service signs the agency's own calls with this key file
    suite.save_key(key, topo.suite / "orgs" / AGENCY / "key.jwk")
    topo.wait(lambda: topo.get("identity", "/openapi.json", AGENCY).status_code == 200, "identity")
    early = {"name": "ResidenceCredential", "schema": RESIDENCE_SCHEMA}
    said = refused(topo.post("identity", "/types", AGENCY, json=early), 401, "unauthorized")
    assert "not an active key registered on the chain" in said

    member = {
        "id": AGENCY,
        "name": "City Health Commission",
        "roles": ["agency"],
        "keys": [key.public_hex],
    }
    govern(topo, "add_org", member)
    for name, schema in (
        ("ResidenceCredential", RESIDENCE_SCHEMA),
        ("BusinessCredential", BUSINESS_SCHEMA),
    ):
        expect(topo.post("identity", "/types", AGENCY, json={"name": name, "schema": schema}), 201)
    keys = expect(topo.post("identity", "/issuers/me/keys", AGENCY, json={}), 201)
    assert keys["did"] == f"did:smartcity:{AGENCY}"

    citizen = holder_did(topo, jwk.JWK.generate(kty="OKP", crv="Ed25519"))
    body = {"type": "ResidenceCredential", "subject": citizen, "claims": CITIZEN}
    said = refused(
        topo.post("identity", "/credentials", AGENCY, json=body), 403, "not_authorised_issuer"
    )
    assert f"{AGENCY} is not admitted by governance as an issuer of ResidenceCredential" in said

    types = ["ResidenceCredential", "BusinessCredential"]
    govern(
        topo,
        "invoke",
        {"contract": "identity", "method": "admit_issuer", "args": {"org": AGENCY, "types": types}},
    )
    issuer = expect(topo.get("identity", f"/issuers/{AGENCY}", BANK), 200)
    assert sorted(issuer["authorised_now"]) == sorted(types)
    proven = verify_bundle(issuer["proof"], topo.genesis)
    assert proven.facts["key"] == f"issuer:{AGENCY}" and proven.facts["present"]


def holder_did(topo: Topology, key: jwk.JWK) -> str:
    """The agency registers a holder's DID, derived from the key the holder keeps."""
    made = expect(
        topo.post(
            "identity",
            "/dids",
            AGENCY,
            json={"keys": [{"publicKeyJwk": key.export_public(as_dict=True)}]},
        ),
        201,
    )
    return str(made["did"])


def credentials(topo: Topology, uscc: str) -> str:
    """3. A citizen (SD-JWT) and an SME (VC-JOSE) get credentials; a bank verifies both."""
    citizen_key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    citizen = holder_did(topo, citizen_key)
    body = {"type": "ResidenceCredential", "subject": citizen, "claims": CITIZEN}
    issued = expect(topo.post("identity", "/credentials", AGENCY, json=body), 201)
    assert issued["format"] == "vc+sd-jwt" and issued["issuer"] == f"did:smartcity:{AGENCY}"
    assert "Chen" not in issued["credential"].split("~")[0]  # hidden behind digests

    # The citizen shows the bank only the address, bound to the bank's fresh challenge
    challenge = expect(
        topo.post("identity", "/challenges", BANK, json={"audience": "https://bank-a.example/kyc"}),
        201,
    )
    shown = sd_jwt.present(
        issued["credential"],
        disclose=["credentialSubject.address"],
        holder_key=citizen_key,
        nonce=challenge["nonce"],
        audience=challenge["audience"],
    )
    answer = expect(
        topo.post(
            "identity",
            "/presentations/verify",
            BANK,
            json={"presentation": shown, "nonce": challenge["nonce"]},
        ),
        200,
    )
    report = answer["credentials"][0] if answer["credentials"] else answer
    assert answer["verified"] is True and answer["holder"] == citizen, json.dumps(report)[:2000]
    assert {c["status"] for c in report["checks"].values()} == {"passed"}, report["checks"]
    subject = report["claims"]["credentialSubject"]
    assert subject["address"]["city"] == "Metropolis" and "birthDate" not in subject

    sme_key = jwk.JWK.generate(kty="EC", crv="P-256")
    sme_did = holder_did(topo, sme_key)
    body = {
        "type": "BusinessCredential",
        "subject": sme_did,
        "format": "vc+jwt",
        "claims": {"legalName": "Demo Precision Parts Co.", "uscc": uscc},
    }
    issued = expect(topo.post("identity", "/credentials", AGENCY, json=body), 201)
    checked = expect(
        topo.post(
            "identity", "/credentials/verify", BANK, json={"credential": issued["credential"]}
        ),
        200,
    )
    assert checked["verified"] is True and checked["format"] == "vc+jwt", checked
    assert checked["claims"]["credentialSubject"]["uscc"] == uscc
    authorisation = verify_bundle(checked["proofs"]["issuer_authorisation"], topo.genesis)
    assert authorisation.facts["value"]["org"] == AGENCY
    anchor = verify_bundle(checked["proofs"]["anchor"], topo.genesis)
    assert anchor.facts["key"] == f"cred:{issued['hash']}"
    return sme_did


def rate_sme(topo: Topology, uscc: str, sme_did: str) -> dict[str, Any]:
    """4. The committee approves the credit model; the SME registers, uploads, is rated."""

    def registered() -> list[dict[str, Any]]:
        models = expect(topo.get("credit", "/models", "regulator"), 200)["models"]
        return [m for m in models if m["status"] == "pending"]

    sha = topo.wait(registered, "the credit model's registration on the chain")[0]["sha256"]
    for org, tx in committee_model_approval(topo, sha):
        expect(topo.post("credit", f"/models/{sha}/governance", org, json={"tx": tx}), 200)
    listed = expect(topo.get("credit", "/models", "regulator"), 200)["models"]
    assert next(m for m in listed if m["sha256"] == sha)["status"] == "approved"

    sme = expect(topo.post("credit", "/smes", SME_ORG, json={"uscc": uscc, "did": sme_did}), 201)
    assert sme["org"] == SME_ORG and sme["did"] == sme_did
    csv = statement_csv(synthetic_statements(4, seed=11), uscc)
    files = {"file": ("statements.csv", csv, "text/csv")}
    uploaded = expect(topo.post("credit", f"/smes/{uscc}/statements", SME_ORG, files=files), 201)
    assert uploaded["periods"] == ["2021", "2022", "2023"]
    rating = expect(topo.post("credit", f"/smes/{uscc}/ratings", SME_ORG), 201)
    assert rating["grade"] in {"AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"}
    assert rating["model"] == sha and rating["reasons"] and rating["tx"]
    return dict(rating)


def committee_model_approval(topo: Topology, sha: str) -> list[tuple[str, dict[str, Any]]]:
    """The proposal and the vote, each signed by its committee member (sdk.py)."""
    height = topo.height(SERVICE_NODE["credit"])
    chain_id = topo.genesis.chain_id
    proposal = sdk.model_proposal_tx(
        topo.home.org_key(PROPOSER), chain_id=chain_id, expiry_height=height + 100, sha256=sha
    )
    vote = sdk.vote_tx(
        topo.home.org_key(VOTER),
        chain_id=chain_id,
        expiry_height=height + 100,
        proposal=proposal.hash,
    )
    return [(PROPOSER, proposal.to_json()), (VOTER, vote.to_json())]


def bank_reads(topo: Topology, uscc: str, rating: dict[str, Any]) -> None:
    """5. No consent, 403; the SME signs consent; the bank's proof verifies offline."""
    path, params = f"/smes/{uscc}/rating", {"purpose": "loan_application"}
    said = refused(topo.get("credit", path, BANK, params=params), 403, "no_consent")
    assert "grant_consent" in said

    end_ms = int(time.time() * 1000) + 30 * 24 * 3600 * 1000
    tx = sdk.grant_consent_tx(
        topo.home.org_key(SME_ORG),
        chain_id=topo.genesis.chain_id,
        expiry_height=topo.height(SERVICE_NODE["credit"]) + 100,
        uscc=uscc,
        bank=BANK,
        purpose="loan_application",
        end_ms=end_ms,
    )
    granted = expect(topo.post("credit", "/consents", SME_ORG, json={"tx": tx.to_json()}), 201)
    assert granted["live"] and granted["granted_tx"] == tx.hash

    answer = expect(topo.get("credit", path, BANK, params=params), 200)
    assert answer["rating"]["grade"] == rating["grade"] and answer["rating"]["pd"] == rating["pd"]
    bundle = topo.root / "rating-proof.json"
    bundle.write_text(json.dumps(answer["proof"]))
    offline = cli("verify-proof", str(bundle), "--genesis", str(topo.suite / "genesis.json"))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert offline.stdout.startswith(f"VALID: The credit rating of SME {uscc} (grade ")
    assert sdk.verify_rating_answer(answer, topo.genesis).rating["grade"] == rating["grade"]
    forged = {**answer["proof"], "value": {**answer["proof"]["value"], "grade": "AAA", "pd": 0.0}}
    with pytest.raises(ProofError):
        verify_bundle(forged, topo.genesis)  # a better rating than the chain holds is caught

    seen = expect(topo.get("credit", f"/smes/{uscc}/inquiries", SME_ORG), 200)
    assert [(i["bank"], i["purpose"], i["tx"]) for i in seen["inquiries"]] == [
        (BANK, "loan_application", answer["inquiry"]["tx"])
    ]


def kill_validator(topo: Topology) -> int:
    """6. SIGKILL one validator; returns the first height it can have had no part in."""
    assert topo.kill(KILLED) == -9
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{topo.url(KILLED)}/v1/status", timeout=5)
    # Its last precommit may be in the block after the highest one committed when it died
    survivors = [n for n in topo.nodes if n.startswith("validator") and n != KILLED]
    return max(topo.height(n) for n in survivors) + 2


def road_network(city: str) -> Network:
    """The demo segment with one planted pothole, driven by several vehicles of mixed classes."""
    demo = json.loads(default_geojson_path().read_text())
    only = {**demo, "features": [f for f in demo["features"] if f["id"] == SEGMENT]}
    return build_network(
        city=city,
        seed=SIM_SEED,
        n_devices=VEHICLES,
        geojson=only,
        potholes_per_segment=1,
        bumps_per_segment=0,
        anomaly_margin_m=30.0,
    )


def potholes(topo: Topology, broker_url: str, city: str, webhook: AlertReceiver, after: int) -> str:
    """7. Vehicles stream signed telemetry through MQTT and the gateway, anchored by the three
    surviving validators (from height AFTER on); road health confirms the planted pothole near
    its true place and alerts a webhook; returns the confirming transaction."""
    ready = topo.gateway_ready
    expect(
        topo.post("roadhealth", "/v1/webhooks", "road-authority", json={"url": webhook.url}), 200
    )
    network = with_suite_keys(road_network(city), topo.genesis.crypto)  # the chain's device keys
    (planted,) = [a["position_m"] for a in network.segments[0].truth()["anomalies"]]
    road_key = topo.home.org_key("road-authority")
    with topo.client(SERVICE_NODE["roadhealth"], "road-authority") as client:
        ledger = RemoteLedger(client, topo.genesis)
        ids = register_devices(
            ledger, road_key, network, topo.url("roadhealth"), stop=threading.Event(), timeout_s=30
        )
    assert ids == [d.id for d in network.devices]

    health = topo.wait(lambda: ready.exists() and ready.read_text(), "the gateway to start")
    topo.wait(lambda: httpx.get(f"{health}/healthz").json()["mqtt"]["connected"], "MQTT")
    fleet = Fleet(network, seed=SIM_SEED, window_s=4.0)
    publisher = connect_publisher(broker_url, f"story-sim-{city}")
    try:
        while not all(s.segments_driven >= 1 for s in fleet.streams):
            publish_fleet(publisher, fleet, count=len(fleet.streams))
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    sent = len(fleet.sent_good)
    report = topo.wait(lambda: gateway_accepted(health, sent), f"the gateway to accept {sent}")
    assert report["rejected"] == {}, report
    reading_anchored(topo, fleet.streams[0].device.id, after)

    def confirmed() -> list[dict[str, Any]]:
        found = topo.get("roadhealth", "/v1/potholes", "road-authority").json()["features"]
        return [p["properties"] for p in found]

    (pothole,) = topo.wait(confirmed, "road health to confirm the planted pothole", 60)
    assert pothole["segment"] == SEGMENT and pothole["vehicles"] >= 3, pothole
    assert abs(pothole["chainage_m"] - planted) <= POTHOLE_RADIUS_M, (pothole, planted)
    alert = topo.wait(
        lambda: [a for a in webhook.received if a["kind"] == "pothole_confirmed"],
        "the webhook to receive the pothole alert",
        30,
    )[0]
    assert alert["segment"] == SEGMENT and alert["city"] == city, alert
    assert abs(alert["data"]["chainage_m"] - planted) <= POTHOLE_RADIUS_M, alert
    assert alert["chain_tx"] == pothole["confirmed_tx"]
    return str(pothole["confirmed_tx"])


def reading_anchored(topo: Topology, device: str, after: int) -> None:
    """A vehicle's first reading is proven from its signature to a block, offline."""

    def stored() -> Any:
        found = topo.get("roadhealth", f"/v1/readings/{device}/1/proof", "regulator")
        return found.json() if found.status_code == 200 else None

    answer = topo.wait(stored, f"{device}'s first reading to be stored with its anchor", 30)
    assert answer["signature_valid"] and answer["payload"]["device"] == device, answer
    proven = verify_bundle(answer["bundle"], topo.genesis)
    assert proven.facts["record"] == answer["message_hash"] and proven.height >= after


def gateway_accepted(health: str, sent: int) -> dict[str, Any] | None:
    report: dict[str, Any] = httpx.get(f"{health}/healthz").json()
    return report if report["accepted"] >= sent else None


def reached(topo: Topology, name: str, height: int) -> bool:
    """Whether node NAME has committed HEIGHT."""
    return topo.height(name) >= height


def observer_agrees(topo: Topology, after: int, confirm_tx: str) -> None:
    """8. The observer reaches the validators' height with the same hash at every height and
    the same state root; blocks from height AFTER on carry the three survivors' signatures."""
    survivors = [n for n in topo.nodes if n.startswith("validator") and n != KILLED]
    top = topo.height("validator-0")
    for name in [*survivors, "observer-0"]:
        topo.wait(partial(reached, topo, name, top), f"{name} to reach height {top}", 30)
    clients = {name: topo.client(name) for name in [*survivors, "observer-0"]}
    try:
        chains = {name: [c.block(h) for h in range(1, top + 1)] for name, c in clients.items()}
        observed = [b["hash"] for b in chains["observer-0"]]
        for name in survivors:
            differ = [h for h, b in enumerate(chains[name], 1) if b["hash"] != observed[h - 1]]
            assert not differ, f"{name} and the observer differ at heights {differ[:10]}"
        assert_survivors_signed(topo, chains["observer-0"][after - 1 :], survivors)
        proof = clients["observer-0"].verified_proof(confirm_tx, topo.genesis)
        assert proof.facts["method"] == "confirm_pothole" and proof.height >= after
        topo.wait(lambda: same_state_root(clients), "the observer's state root to match", 15)
    finally:
        for client in clients.values():
            client.close()


def assert_survivors_signed(
    topo: Topology, blocks: list[dict[str, Any]], survivors: list[str]
) -> None:
    keys = {v.name: v.pub_key for v in topo.genesis.validators}
    alive = {keys[n] for n in survivors}
    # Three of four is exactly the quorum: every block after the kill needed all survivors
    assert any(b["header"]["tx_count"] for b in blocks), "nothing was committed after the kill"
    for block in blocks:
        signers = {s["validator"] for s in block["certificate"]["signatures"]}
        assert signers == alive, (block["header"]["height"], signers)


def same_state_root(clients: dict[str, ChainClient]) -> bool:
    """The observer's own state root equals the root a validator committed at that height."""
    status = clients["observer-0"].status()
    header = clients["validator-0"].block(int(status["height"]))["header"]
    return bool(status["state_root"] == header["state_root"])


def test_the_story_of_the_suite(
    tmp_path: Path, launched: list[Topology], broker_url: str, webhook: AlertReceiver
) -> None:
    timings: dict[str, float] = {}
    city = f"story{uuid.uuid4().hex[:8]}"  # its own MQTT topics on a shared Mosquitto
    uscc = demo_uscc(2)
    with step("1 genesis: init, nodes and services start, the chain advances", timings):
        topo = genesis(tmp_path, launched, broker_url, city)
    with step("1b each service answers through its validator, the observer proves it", timings):
        services_answer(topo)
    with step("2 governance admits a new agency as credential issuer", timings):
        admit_agency(topo)
    with step("3 a citizen and an SME get credentials, a bank verifies them", timings):
        sme_did = credentials(topo, uscc)
    with step("4 the SME is registered, uploads statements and is rated", timings):
        rating = rate_sme(topo, uscc, sme_did)
    with step("5 a bank is refused, gets consent, verifies the rating offline", timings):
        bank_reads(topo, uscc, rating)
    with step(f"6 {KILLED} is killed with SIGKILL", timings):
        after = kill_validator(topo)
    with step("7 sensors find the planted pothole and road health alerts", timings):
        confirm_tx = potholes(topo, broker_url, city, webhook, after)
    with step("8 the regulator's observer holds the identical chain", timings):
        observer_agrees(topo, after, confirm_tx)
    print(json.dumps({"story_step_seconds": timings}, indent=1))
