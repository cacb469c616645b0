"""The dashboard's own endpoints: the page at `/`, demo-only tokens, server-side proof checks."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcity.dashboard import DEMO_MARKER, mount_dashboard
from smartcity.demo import init_suite
from smartcity.suite import open_suite


def _client(data: Path, *, host: str = "127.0.0.1") -> Iterator[TestClient]:
    suite = open_suite(data, host=host, validators=1, observers=0, services=[])
    mount_dashboard(suite.app, suite)
    suite.app.state.suite = suite  # for tests that write to the chain directly
    # As a browser on the same machine addresses `smartcity up` (TestClient's own default
    # Host, `testserver`, is no host the demo minter trusts)
    with TestClient(suite.app, base_url="http://127.0.0.1:8000") as client:
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
        "tx": receipt["tx"],
        "height": receipt["height"],
        "org": "bsn-operator",
        "root": root,
        "count": 3,
        "label": "demo",
        "metadata": {},
    }
    assert demo.get("/dashboard/api/anchors?org=bank-a", headers=auth).json()["anchors"] == []

    found = demo.get(f"/dashboard/api/lookup/{root}", headers=auth).json()
    assert found["kind"] == "anchor" and found["tx"] == receipt["tx"]
    assert demo.get(f"/dashboard/api/lookup/{receipt['tx']}", headers=auth).json() == {
        "kind": "tx",
        "tx": receipt["tx"],
        "height": receipt["height"],
    }
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


TOKEN = "/dashboard/api/token?org=regulator&audience=chain"
TRUSTED = [
    "127.0.0.1",
    "127.0.0.1:8000",
    "localhost",
    "LocalHost:65535",
    "[::1]",
    "[::1]:8000",
    "[0:0:0:0:0:0:0:1]:1",
]
# A Host naming another site (its name rebound to 127.0.0.1), or not a host at all
HOSTILE = [
    "testserver",
    "evil.example",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "evil.example:8000",
    "localhost.",
    "127.0.0.2",
    "127.1",
    "0x7f.0.0.1",
    "[::2]",
    "[::ffff:127.0.0.1]",
    "::1",
    "127.0.0.1:",
    "127.0.0.1:99999",
    "127.0.0.1:8000:1",
    "127.0.0.1@evil.example",
    "evil.example#127.0.0.1",
    "127.0.0.1 evil.example",
    "127.0.0.1/evil",
    "",
    " localhost",
]


def test_demo_tokens_only_for_loopback_hosts(demo: TestClient) -> None:
    for host in TRUSTED:
        r = demo.get(TOKEN, headers={"host": host})
        assert r.status_code == 200, (host, r.text)
    for host in HOSTILE:
        r = demo.get(TOKEN, headers={"host": host})
        assert r.status_code == 403, (host, r.text)
        assert r.json()["error"]["code"] == "untrusted_host"
        assert "DNS rebinding" in r.json()["error"]["message"]


# Printable ASCII, as an HTTP server lets through in a header value
_HOST_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)


@st.composite
def hostile_hosts(draw: st.DrawFn) -> str:
    """A trusted host with something around it, another name, or arbitrary text."""
    trusted = draw(st.sampled_from(["127.0.0.1", "localhost", "[::1]", "::1"]))
    junk = draw(_HOST_TEXT.filter(lambda t: t != "" and not re.fullmatch(r":[0-9]{1,4}", t)))
    return draw(
        st.sampled_from(
            [junk + trusted, trusted + "." + junk, junk + "." + trusted, trusted + junk]
        )
        | st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True)
        | _HOST_TEXT
    )


def _is_loopback(host: str) -> bool:
    """An independent statement of the rule: one of the three loopback names, any port."""
    m = re.fullmatch(
        r"(localhost|127\.0\.0\.1|\[(?:::1|(?:0+:){7}0*1)\])(?::([0-9]{1,5}))?",
        host,
        flags=re.IGNORECASE,
    )
    return m is not None and (m[2] is None or int(m[2]) <= 65535)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(host=hostile_hosts())
def test_no_demo_token_for_a_generated_hostile_host(demo: TestClient, host: str) -> None:
    r = demo.get(TOKEN, headers={"host": host})
    if _is_loopback(host):
        assert r.status_code == 200, (host, r.text)
    else:
        assert r.status_code == 403, (host, r.text)
        assert r.json()["error"]["code"] == "untrusted_host"


def test_the_configured_public_host_is_trusted_too(tmp_path: Path) -> None:
    for client in _client(tmp_path / "data", host="dashboard.city.example"):
        for host in ["dashboard.city.example", "Dashboard.City.Example:8000", "localhost:3000"]:
            assert client.get(TOKEN, headers={"host": host}).status_code == 200, host
        for host in ["city.example", "dashboard.city.example.evil.example", "127.0.0.1.nip.io"]:
            r = client.get(TOKEN, headers={"host": host})
            assert r.status_code == 403 and "dashboard.city.example" in r.text, (host, r.text)
