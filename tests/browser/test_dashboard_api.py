"""The dashboard's own endpoints: the page at `/`, demo-only tokens, server-side proof checks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chain.home import init_suite
from smartcity.dashboard import DEMO_MARKER, mount_dashboard
from smartcity.suite import open_suite


def _client(data: Path) -> Iterator[TestClient]:
    suite = open_suite(data, validators=1, observers=0, services=[])
    mount_dashboard(suite.app, suite)
    suite.app.state.suite = suite  # for tests that write to the chain directly
    with TestClient(suite.app) as client:
        yield client


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path / "data")


@pytest.fixture
def not_demo(tmp_path: Path) -> Iterator[TestClient]:
    init_suite(tmp_path / "data")  # created by `smartcity init`, not by the suite
    yield from _client(tmp_path / "data")


def test_the_page_is_served_at_the_root_without_external_assets(demo: TestClient) -> None:
    r = demo.get("/", follow_redirects=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<title>Smart city dashboard</title>" in r.text
    assert "http" not in r.text.replace('"/dashboard', "")  # nothing fetched from elsewhere
    assert demo.get("/dashboard/static/app.js").status_code == 200
    config = demo.get("/dashboard/api/config").json()
    assert config["demo"] is True
    assert re.fullmatch(r"smartcity-demo-[0-9a-f]{6}", config["chain_id"])  # one id per chain
    assert "regulator" in [o["id"] for o in config["orgs"]]


def test_demo_tokens_open_the_apis_for_five_minutes(demo: TestClient) -> None:
    r = demo.get("/dashboard/api/token", params={"org": "regulator", "audience": "chain"})
    assert r.status_code == 200 and r.json()["expires_in"] == 300
    auth = {"Authorization": "Bearer " + r.json()["token"]}
    assert demo.get("/chain/v1/status", headers=auth).status_code == 200


def test_token_requests_with_bad_input_are_refused(demo: TestClient) -> None:
    r = demo.get("/dashboard/api/token", params={"org": "mallory", "audience": "chain"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_org"
    r = demo.get("/dashboard/api/token", params={"org": "regulator", "audience": "payroll"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_audience"
    assert demo.get("/dashboard/api/token", params={"org": "regulator"}).status_code == 422


def test_no_tokens_outside_demo_mode(not_demo: TestClient, tmp_path: Path) -> None:
    assert not (tmp_path / "data" / DEMO_MARKER).exists()
    assert not_demo.get("/dashboard/api/config").json()["demo"] is False
    r = not_demo.get("/dashboard/api/token", params={"org": "regulator", "audience": "chain"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_demo"
    assert "smartcity token" in r.json()["error"]["message"]


def test_a_bundle_is_verified_against_the_suites_genesis(demo: TestClient) -> None:
    token = demo.get("/dashboard/api/token", params={"org": "regulator", "audience": "chain"})
    auth = {"Authorization": "Bearer " + token.json()["token"]}
    deadline = time.monotonic() + 20
    while demo.get("/chain/v1/status", headers=auth).json()["height"] < 1:
        assert time.monotonic() < deadline, "no block committed"
        time.sleep(0.1)
    bundle = demo.get("/chain/v1/state/membership/org:regulator", headers=auth).json()
    r = demo.post("/dashboard/api/verify", json=bundle)
    assert r.status_code == 200 and r.json()["verified"] is True, r.json()
    assert r.json()["kind"] == "state" and "membership" in r.json()["summary"]
    # In words: what was proven, at which block, signed by whom; the particulars apart
    said = r.json()["sentence"]
    assert said.startswith("Organisation regulator (") and "; active) is registered" in said
    height, chain_id = bundle["header"]["height"], bundle["chain_id"]
    assert f"in the state after block {height} of chain {chain_id}," in said
    assert said.endswith("signed by 1 of 1 validators (validator-0).")
    details = dict(r.json()["details"])
    assert details["block hash"] == r.json()["block_hash"]
    assert details["entry"] == "membership/org:regulator"
    assert '"id": "regulator"' in details["value"]

    bundle["key"] = "org:bank-a"  # the proof of another key, relabelled
    r = demo.post("/dashboard/api/verify", json=bundle)
    assert r.json()["verified"] is False and r.json()["reason"]

    r = demo.post("/dashboard/api/verify", json=[1, 2])
    assert r.json() == {"verified": False, "reason": "a bundle is a JSON object"}
    r = demo.post(
        "/dashboard/api/verify", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_the_explorer_finds_anchors_blocks_and_transactions_by_hash(demo: TestClient) -> None:
    from chain.auth import mint_token
    from chain.home import SuiteHome
    from services.common.ledger import EmbeddedLedger, call

    suite = demo.app.state.suite  # type: ignore[attr-defined]
    ledger = EmbeddedLedger(suite.node)
    root = "ab" * 32
    key = SuiteHome(suite.data).org_key("bsn-operator")
    receipt = call(ledger, key, "anchors", "anchor", {"root": root, "count": 3, "label": "demo"})
    assert receipt["status"] == "ok", receipt
    token = demo.get("/dashboard/api/token", params={"org": "regulator", "audience": "chain"})
    auth = {"Authorization": "Bearer " + token.json()["token"]}

    listed = demo.get("/dashboard/api/anchors", headers=auth).json()["anchors"]
    assert listed[0] == {
        "tx": receipt["tx"], "height": receipt["height"], "org": "bsn-operator", "root": root,
        "count": 3, "label": "demo", "metadata": {},
    }  # fmt: skip
    assert demo.get("/dashboard/api/anchors?org=bank-a", headers=auth).json()["anchors"] == []

    found = demo.get(f"/dashboard/api/lookup/{root}", headers=auth).json()
    assert found["kind"] == "anchor" and found["tx"] == receipt["tx"]
    assert demo.get(f"/dashboard/api/lookup/{receipt['tx']}", headers=auth).json() == {
        "kind": "tx", "tx": receipt["tx"], "height": receipt["height"],
    }  # fmt: skip
    block = demo.get(f"/chain/v1/blocks/{receipt['height']}", headers=auth).json()
    by_hash = demo.get(f"/dashboard/api/lookup/{block['hash']}", headers=auth).json()
    assert by_hash == {"kind": "block", "height": receipt["height"]}

    unknown = demo.get(f"/dashboard/api/lookup/{'cd' * 32}", headers=auth)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    bad = demo.get("/dashboard/api/lookup/not-a-hash", headers=auth)
    assert bad.status_code == 422 and "digest" in bad.json()["error"]["message"]
    anonymous = demo.get("/dashboard/api/anchors")
    assert anonymous.status_code == 401 and "missing bearer token" in anonymous.text
    wrong = mint_token(SuiteHome(suite.data).org_key("regulator"), org="regulator", audience="x")
    refused = demo.get("/dashboard/api/anchors", headers={"Authorization": "Bearer " + wrong})
    assert refused.status_code == 401 and "audience" in refused.json()["error"]["message"]
