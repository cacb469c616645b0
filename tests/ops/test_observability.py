"""What an operator scrapes and probes: /metrics, /healthz, /readyz; and what the logs look like."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from chain.client import ChainClient, Identity
from chain.crypto import SigningKey
from chain.genesis import Genesis
from chain.home import SuiteHome, load_node_home
from chain.ledger import Ledger
from chain.node import Node
from chain.server import RunningNode, open_node
from chain.tx import sign_tx
from services.common.context import ServiceContext
from services.common.ledger import EmbeddedLedger, LedgerPort, RemoteLedger
from smartcity.demo import init_suite
from smartcity.logs import JsonFormatter, RedactingFilter, default_format
from smartcity.ops import instrument_service

JWT = "eyJhbGciOiJFZERTQSIsImtpZCI6ImFiYyJ9.eyJzdWIiOiJiYW5rLWEiLCJhdWQiOiJjcmVkaXQifQ.c2lnbmF0dXJl"


@pytest.fixture
def node_app(tmp_path: Path, db_url: str) -> Iterator[RunningNode]:
    init_suite(tmp_path / "suite", validators=1)
    running = open_node(
        load_node_home(tmp_path / "suite" / "nodes" / "validator-0"), database_url=db_url
    )
    yield running
    running.stop()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_node_answers_health_readiness_and_metrics(node_app: RunningNode) -> None:
    with TestClient(node_app.app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "database": {"ok": True},
            "engine": {"ok": True},
            "synced": {"ok": True},
        }
        unknown = "ab" * 32
        assert client.get(f"/v1/txs/{unknown}").status_code == 401
        assert client.get("/no/such/page").status_code == 404
        echoed = client.get("/healthz", headers={"x-request-id": "probe-42"})
        assert echoed.headers["x-request-id"] == "probe-42"
        scraped = client.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    found = samples(scraped.text)
    height = node_app.node.ledger.height
    assert found[("smartcity_chain_height", frozenset({("node", "validator-0")}))] == height
    assert found[("smartcity_mempool_size", frozenset({("node", "validator-0")}))] == 0
    assert ("smartcity_chain_txs_committed_total", frozenset({("node", "validator-0")})) in found
    build = [k for k in found if k[0] == "smartcity_build_info"]
    assert build and ("process", "node") in build[0][1]
    from chain import smt

    assert ("state_tree", smt.IMPLEMENTATION) in build[0][1]  # which tree, for an operator
    import importlib.util

    built = importlib.util.find_spec("smartcity_native._ed25519") is not None
    checks = "batch" if built else "single"
    assert ("signature_checks", checks) in build[0][1]
    assert "process_resident_memory_bytes" in {k[0] for k in found}
    # route templates, never raw paths, so a scraper's series stay bounded
    routes = {dict(k[1]).get("route") for k in found if k[0] == "smartcity_http_requests_total"}
    assert "/v1/txs/{tx_hash}" in routes and "<unmatched>" in routes
    assert not any(unknown in str(r) or "no/such" in str(r) for r in routes)
    key = ("route", "/v1/txs/{tx_hash}"), ("method", "GET"), ("status", "401")
    assert found[("smartcity_http_requests_total", frozenset(key))] == 1


def test_the_committed_count_follows_the_blocks_and_survives_a_restart(
    node_app: RunningNode, tmp_path: Path
) -> None:
    """The counter is what the store holds, kept as blocks are written (not a count of the
    table on every scrape), and a restarted node starts from what is on disk."""
    node = node_app.node
    key = SuiteHome(tmp_path / "suite").org_key("city-agency")
    txs = [
        sign_tx(
            key,
            chain_id=node.ledger.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{i:064x}", "count": 1, "label": "metrics"},
            expiry_height=node.ledger.height + 100,
        )
        for i in range(1, 6)
    ]
    series = ("smartcity_chain_txs_committed_total", frozenset({("node", "validator-0")}))
    with TestClient(node_app.app) as client:
        before = samples(client.get("/metrics").text)[series]
        node.submit(txs)
        assert all(node.wait(tx.hash, 10) for tx in txs)
        node.ledger.flush()
        after = samples(client.get("/metrics").text)[series]
    assert after == before + len(txs) == node.ledger.store.tx_count()
    assert Ledger(node.ledger.genesis, node.ledger.store).txs_stored == after


def test_a_stopped_node_is_alive_but_not_ready(node_app: RunningNode) -> None:
    with TestClient(node_app.app) as client:
        node_app.node.stop()
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["reason"] == "engine: consensus engine not running"
    assert body["checks"]["database"] == {"ok": True}


def test_a_node_whose_block_writer_stopped_is_not_ready(node_app: RunningNode) -> None:
    """Its engine may still run, but it can no longer store a block: readiness says so at once,
    not only when a reader or the next commit trips over it."""
    with TestClient(node_app.app) as client:
        node_app.node.ledger._writer().fail(OSError("disk full"))
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "engine: block writer stopped: disk full"


def service_context(tmp_path: Path, ledger: LedgerPort, database_url: str) -> ServiceContext:
    return ServiceContext(
        name="credit",
        ledger=ledger,
        database_url=database_url,
        data_dir=tmp_path,
        operator_org="bsn-operator",
        operator_key=SigningKey.generate(),
    )


def test_a_service_is_ready_when_its_database_and_ledger_answer(
    tmp_path: Path, node: Node, genesis: Genesis, keys: SimpleNamespace
) -> None:
    good = FastAPI()
    instrument_service(
        good, service_context(tmp_path, EmbeddedLedger(node), f"sqlite:///{tmp_path}/s.db")
    )
    with TestClient(good) as client:
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"database": {"ok": True}, "ledger": {"ok": True}},
        }
        assert 'smartcity_build_info{process="service-credit"' in client.get("/metrics").text
    # a separate app in the same interpreter has its own registry: no duplicate-metric error
    unreachable = RemoteLedger(
        ChainClient("http://127.0.0.1:9", identity=Identity("regulator", keys.regulator)), genesis
    )
    down = FastAPI()
    instrument_service(
        down,
        service_context(tmp_path, unreachable, "postgresql+psycopg://nobody@127.0.0.1:9/none"),
    )
    with TestClient(down) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == {"ok": False, "reason": "database unavailable: OperationalError"}
    assert checks["ledger"]["reason"].startswith("cannot reach the ledger")


def log_line(record_name: str, message: str, *args: object, **extra: object) -> dict[str, object]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(record_name)
    saved = logger.propagate, logger.level, logger.disabled
    logger.addHandler(handler)
    # setLevel, not `.level =`: it clears the logger's cached isEnabledFor answers, which an
    # earlier test (the suite's own logging set uvicorn.access to WARNING) may have left
    logger.propagate, logger.disabled = False, False
    logger.setLevel(logging.INFO)
    try:
        logger.info(message, *args, extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.disabled = saved[0], saved[2]
        logger.setLevel(saved[1])
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 1
    parsed: dict[str, object] = json.loads(lines[0])
    return parsed


def test_json_log_lines_carry_extras_and_never_secrets() -> None:
    line = log_line(
        "smartcity.test",
        "calling %s with Authorization: Bearer %s",
        "postgresql://city:hunter2-long@db:5432/x",
        JWT,
        node="validator-0",
        height=7,
    )
    assert line["level"] == "INFO" and line["logger"] == "smartcity.test"
    assert str(line["time"]).endswith("+00:00")
    assert line["node"] == "validator-0" and line["height"] == 7
    text = json.dumps(line)
    assert JWT not in text and "hunter2" not in text
    assert "city:[REDACTED]@db" in str(line["message"])
    leaked = log_line("smartcity.test", "token %s", JWT, token_hint=f"bearer {JWT}")
    assert leaked["message"] == "token [REDACTED-JWT]" and JWT not in json.dumps(leaked)
    key = log_line(
        "smartcity.test", 'key {"kty":"OKP","crv":"Ed25519","d":"c2VjcmV0a2V5","x":"cHVi"}'
    )
    assert "c2VjcmV0a2V5" not in str(key["message"]) and "cHVi" in str(key["message"])


def test_uvicorn_access_lines_become_fields() -> None:
    line = log_line(
        "uvicorn.access",
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/v1/txs/abc",
        "1.1",
        200,
    )
    assert line["method"] == "GET" and line["path"] == "/v1/txs/abc" and line["status"] == 200


def test_format_is_text_on_a_terminal_json_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert default_format(Terminal()) == "text"
    assert default_format(io.StringIO()) == "json"
    script = (
        "import logging; from smartcity.logs import configure_logging; configure_logging();"
        " logging.getLogger('smartcity.probe').warning('up', extra={'node': 'observer-0'})"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    entry = json.loads(piped.stderr.strip())
    assert entry["message"] == "up" and entry["node"] == "observer-0"
    env["SMARTCITY_LOG_FORMAT"] = "text"
    text = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert text.stderr.strip().endswith("WARNING smartcity.probe: up")
