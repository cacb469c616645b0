"""The dashboard in a real browser: headless Chromium clicks through each page of a live suite.

Needs /usr/bin/chromium and tests/browser/node_modules (`.ci/browser-deps` installs both).
Screenshots go to the test's tmp folder (printed on failure).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.auth import mint_token
from chain.home import SuiteHome
from smartcity.dashboard import mount_dashboard
from smartcity.suite import Suite, open_suite

HERE = Path(__file__).parent
CHROMIUM = Path("/usr/bin/chromium")
USCC = "911101080000000194"


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    suite = open_suite(tmp_path / "data", validators=1, observers=0)
    mount_dashboard(suite.app, suite)
    return suite


def _client(base: str, data: Path, org: str, audience: str) -> httpx.Client:
    token = mint_token(SuiteHome(data).org_key(org), org=org, audience=audience)
    return httpx.Client(
        base_url=f"{base}/{audience}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _seed(base: str, data: Path) -> dict[str, Any]:
    """What a demo has after a few minutes: an SME registered, an agency with a DID."""
    with _client(base, data, "sme-demo", "credit") as credit:
        r = credit.post("/smes", json={"uscc": USCC, "name": "Demo Precision Parts"})
        assert r.status_code == 201, r.text
        sme = r.json()
    with _client(base, data, "city-agency", "identity") as identity:
        r = identity.post("/issuers/me/keys", json={})
        assert r.status_code == 201, r.text
        did = identity.get("/issuers/city-agency").json()["did"]
    with _client(base, data, "regulator", "chain") as chain:
        bundle = chain.get(f"/v1/txs/{sme['tx']}/proof").json()
    tampered = copy.deepcopy(bundle)
    tampered["tx"]["args"]["smes"][0]["uscc"] = "911101080000000195"
    return {
        "height": sme["height"],
        "tx": sme["tx"],
        "bundle": bundle,
        "tampered": tampered,
        "did": did,
        "uscc": USCC,
    }


def _run_browser(base: str, shots: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run .ci/browser-deps"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), "run .ci/browser-deps"
    node = shutil.which("node")
    assert node, "node is not installed: run .ci/browser-deps"
    (shots / "inputs.json").write_text(json.dumps(inputs))
    done = subprocess.run(
        [node, str(HERE / "dashboard.mjs"), base, str(shots), str(shots / "inputs.json")],
        capture_output=True,
        text=True,
        timeout=180,
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
        inputs = _seed(server.url, suite.data)
        seen = _run_browser(server.url, shots, inputs)
    print("screenshots in", shots)
    failed = {k: v for k, v in seen.items() if isinstance(v, dict) and "failed" in v}
    assert not failed, failed
    assert not seen["errors"], seen["errors"]
    assert not seen["external"], f"the page fetched outside the suite: {seen['external']}"

    # The chain explorer is the landing page: latest blocks, validators, no evidence
    chain = seen["chain"]
    assert chain["title"] == "Smart city dashboard"
    assert int(chain["height"]) >= inputs["height"]
    assert chain["rows"] >= 1 and chain["validators"] == 1
    assert "No double votes" in chain["evidence"]

    # Searching a height opens that block: its SME registration and who signed it
    block = seen["block"]
    assert block["url"].endswith(f"#/block/{inputs['height']}")
    assert "credit.register_smes" in block["txs"] or "credit." in block["txs"]
    assert "validator-0" in block["certificate"] and "signed" in block["certificate"]
    assert "1 of 1 validators signed" in block["certificate"]

    # From a transaction, its proof is fetched and verified in one click
    assert "Verified" in seen["txProof"]["result"]

    # A pasted bundle is verified; the same bundle with one field changed is refused
    assert seen["verifyValid"]["ok"], seen["verifyValid"]
    assert (
        f"block {inputs['height']}" in seen["verifyValid"]["result"]
        or str(inputs["height"]) in seen["verifyValid"]["result"]
    )
    assert not seen["verifyTampered"]["ok"]
    assert "Not verified" in seen["verifyTampered"]["result"]
    assert "Not JSON" in seen["verifyGarbage"]["result"]

    # Road health: the demo network drawn, a segment opened from the map
    roads = seen["roads"]
    assert roads["segments"] >= 5, roads
    assert "no data" in roads["legend"]
    assert roads["selected"] >= 1 and roads["url"].endswith("#/roads/" + roads["id"])
    assert "Segment" in roads["detail"] and "Roughness over time" in roads["detail"]

    # Credit: the SME listed, not yet rated, nobody inquired; reachable by USCC search
    assert USCC in seen["credit"]["smes"]
    assert "Not rated yet" in seen["credit"]["detail"]
    assert "0 on the chain" in seen["credit"]["detail"]
    assert seen["searchUscc"]["url"].endswith(f"#/credit/{USCC}")

    # Identity: the agency's DID, found again by searching it
    assert inputs["did"] in seen["identity"]["text"]
    assert seen["searchDid"]["url"].endswith("#/did/" + inputs["did"].replace(":", "%3A"))
    assert "city-agency" in seen["searchDid"]["text"]
    assert "no transaction" in seen["searchUnknown"]["text"]

    for name in ("chain", "block", "verify-valid", "verify-tampered", "roads", "credit"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
