"""The dashboard in a real browser: headless Chromium clicks through every page of a live suite.

The suite is seeded only through its public APIs, as its users would: an SME rated twice and read
by a bank under consent, an agency admitted by governance issuing credentials, and three
simulated vehicles whose signed windows are anchored and ingested as the gateway does.
Needs /usr/bin/chromium and tests/browser/node_modules (`.ci/browser-deps` installs both).
Screenshots go to `<pytest tmp dir>/shots/` (the path is printed).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.auth import mint_token
from chain.consensus.messages import PREVOTE, sign_vote
from chain.crypto import SigningKey
from chain.home import SuiteHome, load_node_home
from chain.tx import sign_tx
from chain.types import BlockHash, Height, Round
from iot_gateway.simulator import PassFleet, SegmentTruth, Vehicle, ingest_body
from iot_gateway.simulator.roads import road_profile
from services.common.ledger import EmbeddedLedger
from services.credit import demo_uscc, sdk, statement_csv, synthetic_statements
from services.roadhealth.analytics.profile import Anomaly
from smartcity.dashboard import mount_dashboard
from smartcity.suite import Suite, open_suite

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
USCC = demo_uscc(0)
SME_NAME = "Demo Precision Parts Co."  # as sme-demo is named in the chain's genesis
DAY_S = 86_400.0
RESIDENCE = {
    "type": "object",
    "properties": {"givenName": {"type": "string"}, "birthDate": {"type": "string"}},
    "required": ["givenName", "birthDate"],
}


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    suite = open_suite(tmp_path / "data", validators=4, observers=1)
    mount_dashboard(suite.app, suite)
    return suite


class Seeder:
    """Calls the suite's APIs over HTTP as each demo organisation."""

    def __init__(self, base: str, suite: Suite) -> None:
        self.base, self.suite = base, suite
        self.home = SuiteHome(suite.data)
        self.chain_id = self.home.genesis().chain_id

    def call(self, org: str, audience: str, method: str, path: str, **kw: Any) -> Any:
        token = mint_token(self.home.org_key(org), org=org, audience=audience)
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        answer = httpx.request(
            method, f"{self.base}/{audience}{path}", headers=headers, timeout=60, **kw
        )
        assert answer.status_code < 300, (method, path, answer.text)
        return answer.json()

    def chain_tx(self, org: str, contract: str, method: str, args: dict[str, Any]) -> Any:
        """Sign as `org`, submit to /chain/v1/txs and wait for the receipt."""
        height = self.call(org, "chain", "GET", "/v1/status")["height"]
        tx = sign_tx(
            self.home.org_key(org),
            chain_id=self.chain_id,
            contract=contract,
            method=method,
            args=args,
            expiry_height=height + 100,
        )
        done = self.call(org, "chain", "POST", "/v1/txs?wait=true", content=tx.encode())
        assert done["receipt"]["status"] == "ok", done
        return done["receipt"]

    def governance(self, action: str, params: dict[str, Any]) -> None:
        """The agency proposes, the regulator approves: a majority of the demo committee."""
        proposal = self.chain_tx(
            "city-agency", "governance", "propose", {"action": action, "params": params}
        )
        self.chain_tx(
            "regulator", "governance", "vote", {"proposal": proposal["tx"], "approve": True}
        )


def seed_credit(s: Seeder) -> dict[str, Any]:
    """The SME registers, uploads two years, is rated, uploads a third, is rated again; a bank
    reads its rating under the SME's consent (an inquiry on the chain)."""
    models = s.call("regulator", "credit", "GET", "/models")["models"]
    sha = models[0]["sha256"]
    expiry = s.call("sme-demo", "credit", "GET", "/chain-params")["expiry_height"]
    proposal = sdk.model_proposal_tx(
        s.home.org_key("city-agency"), chain_id=s.chain_id, expiry_height=expiry, sha256=sha
    )
    vote = sdk.vote_tx(
        s.home.org_key("regulator"),
        chain_id=s.chain_id,
        expiry_height=expiry,
        proposal=proposal.hash,
    )
    for org, tx in (("city-agency", proposal), ("regulator", vote)):
        s.call(org, "credit", "POST", f"/models/{sha}/governance", json={"tx": tx.to_json()})
    sme = s.call("sme-demo", "credit", "POST", "/smes", json={"uscc": USCC, "name": SME_NAME})
    frame = synthetic_statements(3, seed=3)
    csv = {"content-type": "text/csv"}
    for periods in (("2021", "2022"), ("2021", "2022", "2023")):
        part = frame[frame["period"].isin(periods)]
        s.call(
            "sme-demo",
            "credit",
            "POST",
            f"/smes/{USCC}/statements",
            content=statement_csv(part, USCC),
            headers=csv,
        )
        s.call("sme-demo", "credit", "POST", f"/smes/{USCC}/ratings")
    consent = sdk.grant_consent_tx(
        s.home.org_key("sme-demo"),
        chain_id=s.chain_id,
        expiry_height=expiry,
        uscc=USCC,
        bank="bank-a",
        purpose="loan_application",
        end_ms=int((time.time() + DAY_S) * 1000),
    )
    s.call("sme-demo", "credit", "POST", "/consents", json={"tx": consent.to_json()})
    s.call("bank-a", "credit", "GET", f"/smes/{USCC}/rating?purpose=loan_application")
    return sme


def seed_identity(s: Seeder) -> dict[str, Any]:
    """city-agency: a credential type, signing keys, admitted by governance, two credentials."""
    s.call(
        "city-agency",
        "identity",
        "POST",
        "/types",
        json={"name": "ResidenceCredential", "schema": RESIDENCE},
    )
    s.call("city-agency", "identity", "POST", "/issuers/me/keys", json={})
    s.governance(
        "invoke",
        {
            "contract": "identity",
            "method": "admit_issuer",
            "args": {"org": "city-agency", "types": ["ResidenceCredential"]},
        },
    )
    holder = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    did = s.call(
        "city-agency", "identity", "POST", "/dids", json={"keys": [{"publicKeyJwk": holder}]}
    )["did"]
    item = {
        "type": "ResidenceCredential",
        "subject": did,
        "claims": {"givenName": "Mei", "birthDate": "1990-04-02"},
    }
    issued = s.call(
        "city-agency", "identity", "POST", "/credentials/batch", json={"items": [item, item]}
    )["credentials"]
    return {"did": did, "agency_did": "did:smartcity:city-agency", "credentials": issued}


def seed_roads(s: Seeder) -> dict[str, Any]:
    """Three vehicles drive three segments on two days; each day's windows are anchored and
    ingested as the gateway does. The first segment is rough and has a pothole."""
    runtime = s.suite.services["roadhealth"].state.runtime
    fleet = PassFleet(runtime.index)
    segments = sorted(runtime.index.lengths_m)[:3]
    for j, segment in enumerate(segments):
        fleet.plan(segment, base_iri=(4.0, 1.0, 2.2)[j], seed=j)
    # A pothole of the common size (the draw this replaced, 2 cm deep and 0.5 m long on this
    # rough road, is seen by 2 of the 3 phone-like vehicles: the live gate's miss, not the map's)
    rough = segments[0]
    pothole = Anomaly("pothole", 90.0, 0.8, 0.06)  # off the middle, where the test clicks
    fleet.truth[rough] = SegmentTruth(
        rough,
        road_profile(
            length_m=runtime.index.lengths_m[rough], iri_m_per_km=4.0, seed=0, anomalies=(pothole,)
        ),
    )
    vehicles = []
    for i, cls in enumerate(("car", "van", "bus")):
        key = SigningKey.from_seed(bytes([40 + i]) * 32)
        args = {"device": f"{cls}-1", "pub_key": key.public_hex, "vehicle_class": cls}
        tx = sign_tx(
            s.home.org_key("road-authority"),
            chain_id=s.chain_id,
            contract="roadhealth",
            method="register_device",
            args=args,
            expiry_height=10_000,
        )
        s.call("road-authority", "roadhealth", "POST", "/v1/devices/tx", json={"tx": tx.to_json()})
        vehicles.append(Vehicle(f"{cls}-1", key, cls))
    ledger = EmbeddedLedger(s.suite.node)
    roots = []
    for day in (2, 0):
        t0 = time.time() - day * DAY_S
        payloads = [
            p
            for i, vehicle in enumerate(vehicles)
            for j, segment in enumerate(segments)
            for p in fleet.drive(
                vehicle,
                segment,
                speed_mps=10.0 + i,
                t0=t0 + 300 * (3 * i + j),
                reverse=i == 1,
                seed=10 * j + i + day,
            )
        ]
        operator = s.home.org_key("bsn-operator")
        assert isinstance(operator, SigningKey)  # this suite is ed25519-sha256
        body = ingest_body(ledger, operator, payloads)
        s.call("bsn-operator", "roadhealth", "POST", "/v1/ingest", json=body)
        roots.append(body["batch"]["root"])
    return {"segment": segments[0], "root": roots[-1]}


def seed(base: str, suite: Suite) -> dict[str, Any]:
    """What a demo holds after a few minutes of use, made through the real APIs. The three
    applications are seeded at once, as their users would act: their transactions share blocks."""
    s = Seeder(base, suite)
    with ThreadPoolExecutor(max_workers=3) as pool:
        credit, ids, roads = (pool.submit(f, s) for f in (seed_credit, seed_identity, seed_roads))
        sme, identity, road = credit.result(), ids.result(), roads.result()
    bundle = s.call("regulator", "chain", "GET", f"/v1/txs/{sme['tx']}/proof")
    tampered = copy.deepcopy(bundle)
    tampered["tx"]["args"]["smes"][0]["uscc"] = demo_uscc(1)
    block = s.call("regulator", "chain", "GET", f"/v1/blocks/{sme['height']}")
    return {
        "height": sme["height"],
        "tx": sme["tx"],
        "block_hash": block["hash"],
        "bundle": bundle,
        "tampered": tampered,
        "uscc": USCC,
        **identity,
        **road,
    }


def equivocate(suite: Suite) -> None:
    """validator-3 turns Byzantine: it prevotes nil and a block nobody proposed at the height
    being decided, over the in-process wires its engine uses. A quarter of the voting power
    cannot stall or fork the chain; the honest nodes must record the double vote as evidence."""
    key = load_node_home(suite.data / "nodes" / "validator-3").key()
    wires = suite.cluster.hub.transport(key.public_hex)
    ledger = suite.node.ledger
    deadline = time.monotonic() + 30
    while not ledger.store.evidence(1):
        assert time.monotonic() < deadline, "no node recorded validator-3's double vote"
        height = Height(ledger.height + 1)  # raced by a commit now and then: then try again
        for block_hash in (None, BlockHash("ee" * 32)):
            wires.broadcast(sign_vote(key, ledger.chain_id, PREVOTE, height, Round(0), block_hash))
        time.sleep(0.5)


def run_browser(base: str, shots: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run .ci/browser-deps"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), "run .ci/browser-deps"
    node = shutil.which("node")
    assert node, "node is not installed: run .ci/browser-deps"
    (shots / "inputs.json").write_text(json.dumps(inputs))
    (shots / "bundle.proof.json").write_text(json.dumps(inputs["bundle"]))
    done = subprocess.run(
        [node, str(HERE / "dashboard.mjs"), base, str(shots), str(shots / "inputs.json")],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=HERE,
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


def test_a_person_clicks_through_the_dashboard(
    suite: Suite, tmp_path: Path, live_server: Callable[[Any], Any]
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    with live_server(suite.app) as server:
        started = time.monotonic()
        inputs = seed(server.url, suite)
        equivocate(suite)
        seeded = time.monotonic()
        seen = run_browser(server.url, shots, inputs)
    print(f"seeded in {seeded - started:.0f} s, browser {time.monotonic() - seeded:.0f} s")
    print("screenshots in", shots)
    failed = {k: v for k, v in seen.items() if isinstance(v, dict) and "failed" in v}
    assert not failed, failed
    assert not seen["errors"], f"the page threw: {seen['errors']}"
    # The one expected failure: looking up a hash the chain does not know answers 404
    expected = [r for r in seen["failedRequests"] if r["step"] == "searchUnknown"]
    assert [r["status"] for r in expected] == [404] and "/dashboard/api/lookup/" in expected[0][
        "url"
    ]
    assert len(seen["failedRequests"]) == 1, f"requests failed: {seen['failedRequests']}"
    unexpected = [
        c for c in seen["console"] if c["step"] != "searchUnknown" or "404" not in c["text"]
    ]
    assert not unexpected, f"console errors: {unexpected}"
    assert not seen["external"], f"the page fetched outside the suite: {seen['external']}"

    # The chain explorer is the landing page: blocks, validators with their votes, anchors
    chain = seen["chain"]
    assert chain["title"] == "Smart city dashboard"
    shown = min(15, int(chain["height"]))
    assert int(chain["height"]) >= inputs["height"] and chain["rows"] == shown
    assert all(f"validator-{i}" in chain["validators"] for i in range(4))
    assert chain["validatorOrder"] == [f"validator-{i}" for i in range(4)]
    assert f"/{shown}" in chain["validators"]
    # The regulator's observer: its height, its last block hash, and that it agrees
    assert chain["observerRows"] == 1 and "observer-0" in chain["observers"]
    observer = re.compile(r"observer-0\t\d+\t[0-9a-f]{20}…\tyes, ")
    assert observer.search(chain["observers"]), chain["observers"]
    # validator-3's double vote, recorded by the node the explorer reads
    assert "duplicate vote (prevote)" in chain["evidence"] and "validator-3" in chain["evidence"]
    assert " vs " in chain["evidence"] and "nil" in chain["evidence"]
    assert "iot-gateway" in chain["anchors"] and "bsn-operator" in chain["anchors"]

    # Searching a height opens that block: its SME registration and who signed it
    block = seen["block"]
    assert block["url"].endswith(f"#/block/{inputs['height']}")
    assert "credit.register_smes" in block["txs"]
    assert "validator-0" in block["certificate"] and "signed" in block["certificate"]
    assert re.search(r"\b[34] of 4 validators signed", block["certificate"]), block["certificate"]
    assert seen["searchBlockHash"]["url"].endswith(f"#/block/{inputs['height']}")

    # A transaction found by its hash; its proof fetched and verified in one click
    assert seen["searchTx"]["url"].endswith("#/tx/" + inputs["tx"])
    assert "credit.register_smes" in seen["searchTx"]["text"]
    assert "Verified" in seen["txProof"]["result"]
    relayed = "(credit.register_smes, ok) sent by bsn-operator is in block"  # the service relays
    assert relayed in seen["txProof"]["result"]

    # An anchor found by its root (search box and the explorer's form), its proof verified
    assert seen["searchRoot"]["url"].endswith("#/anchor/" + seen["searchRoot"]["tx"])
    assert (
        inputs["root"] in seen["searchRoot"]["text"] and "iot-gateway" in seen["searchRoot"]["text"]
    )
    assert seen["anchorForm"]["url"] == seen["searchRoot"]["url"]
    assert "Verified" in seen["anchorProof"]["result"]
    assert "The anchor batch 'iot-gateway' of " in seen["anchorProof"]["result"]
    assert " records by bsn-operator (root " in seen["anchorProof"]["result"]

    # Pasted and dropped bundles are verified; one changed field or bad JSON is refused
    valid = seen["verifyValid"]
    assert valid["ok"] and str(inputs["height"]) in valid["result"]
    # One sentence: what was proven, at which block, signed by whom; no raw JSON, nothing cut
    assert re.fullmatch(
        r"✔ Verified\. Transaction [0-9a-f]{12}… \(credit\.register_smes, ok\) sent by"
        rf" bsn-operator is in block {inputs['height']} of chain smartcity-demo-[0-9a-f]{{6}},"
        r" committed .+ UTC and signed by"
        r" [34] of 4 validators \((validator-\d, ){2,3}validator-\d\)\.",
        valid["sentence"],
    ), valid["sentence"]
    assert "{" not in valid["result"]
    # The particulars fold out on request and the box stays compact while folded
    assert inputs["block_hash"] in valid["details"] and "transactions root" in valid["details"]
    assert valid["foldedHeight"] < 200 < valid["openHeight"] < 900, valid
    assert seen["verifyDropped"]["ok"] and "Verified" in seen["verifyDropped"]["result"]
    assert not seen["verifyTampered"]["ok"] and "Not verified" in seen["verifyTampered"]["result"]
    assert "Not JSON" in seen["verifyGarbage"]["result"]

    # Road health from live telemetry: conditions, a confirmed pothole, priorities, a trend
    roads = seen["roads"]
    assert roads["strays"] == [], roads  # no "null" where a part was left out
    assert roads["segments"] >= 5 and roads["coloured"] >= 3, roads
    assert roads["potholes"] >= 1 and "confirmed potholes: 1" in roads["legend"]
    assert roads["url"].endswith("#/roads/" + inputs["segment"])
    assert roads["priorities"] >= 3 and "poor" in roads["priorityText"]
    assert "Roughness over time" in roads["detail"] and roads["points"] >= 2
    assert "m/km per 30 days" in roads["detail"]
    # Readable map: a label per street, a scale bar, the selection set off from the rest
    assert {"Market Street", "Central Avenue"} <= set(roads["streets"]), roads["streets"]
    assert re.fullmatch(r"\d+ k?m", roads["scale"]), roads["scale"]
    assert roads["selected"].startswith("Selected: ") and roads["halo"] >= 1
    assert float(roads["selectedWidth"].removesuffix("px")) >= 9
    assert float(roads["otherOpacity"]) < 1
    # The trend's time axis: distinct labels, more than one point
    assert len(roads["ticks"]) >= 2 and len(set(roads["ticks"])) == len(roads["ticks"])

    # Credit: the SME's two ratings, and the bank that inquired, found by USCC
    credit = seen["credit"]
    assert seen["searchUscc"]["url"].endswith(f"#/credit/{USCC}")
    assert "Rating history (2)" in credit["detail"] and credit["ratings"] == 2
    assert "2023" in credit["ratingsText"] and "2022" in credit["ratingsText"]
    assert "1 on the chain" in credit["detail"] and "bank-a" in credit["inquiries"]
    assert "loan application" in credit["inquiries"]
    # Reasons a bank officer reads: the ratio's meaning, its value, the points it cost
    assert credit["reasons"], credit
    for reason in credit["reasons"]:
        sentence = r"[A-Z][a-z ]+: .+ is -?[\d.,e+-]+, which lowers the score by \d+\.\d points"
        assert re.fullmatch(sentence + r" \(Attr\d+\)", reason), reason
    assert "Attr" not in credit["ratingsText"]
    # One name for the SME wherever it appears
    assert SME_NAME in credit["smes"] and credit["smeOption"].startswith(SME_NAME)
    # The bank's own view: the consent it holds, the rating it read, the read's proof
    assert SME_NAME in credit["bankConsents"] and "in force" in credit["bankConsents"]
    assert USCC in credit["bankReads"] and "loan application" in credit["bankReads"]
    read = seen["bankReadProof"]
    assert "Verified" in read["result"] and "(credit.record_inquiry, ok)" in read["sentence"]

    # Identity: the agency's credentials, one revoked by a click, the revoked filter
    identity = seen["identity"]
    assert inputs["agency_did"] in identity["issuer"]
    assert "2 shown: 2 issued, 0 suspended, 0 revoked" in identity["before"]
    assert "2 shown: 1 issued, 0 suspended, 1 revoked" in identity["after"]
    assert identity["revokedRows"] == 1 and "revoked at block" in identity["revoked"]
    assert seen["searchDid"]["url"].endswith("#/did/" + inputs["did"].replace(":", "%3A"))
    assert "controlled by\ncity-agency" in seen["searchDid"]["text"]
    assert "no transaction, block, anchored root or credential" in seen["searchUnknown"]["text"]

    for name in (
        "chain",
        "block",
        "tx",
        "anchor",
        "verify-valid",
        "verify-valid-details",
        "verify-dropped",
        "bank-read-proof",
        "verify-tampered",
        "roads",
        "credit",
        "identity",
        "did",
    ):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
