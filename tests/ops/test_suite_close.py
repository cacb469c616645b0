"""Closing a suite stops everything it started: its nodes' threads and its services' own.

A mounted app's shutdown hooks never run, so the suite closes each service's context itself
(ServiceContext.close). A service thread left running would go on polling tables that an
embedding (a test, a bench run) drops once the suite is gone."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import cast

import pytest
from fastapi.testclient import TestClient

from chain.auth import mint_token
from chain.crypto import SigningKey
from chain.home import SuiteHome
from services.common.context import ServiceContext
from services.common.ledger import LedgerPort
from services.identity.block_feed import POLL_S
from smartcity.registry import CREDIT, IDENTITY, ROADHEALTH
from smartcity.suite import open_suite

# The threads that read a service's tables; gone when the suite's close returns
READS_TABLES = {"roadhealth-alerts"}


def test_closing_a_suite_ends_every_thread_it_started(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    data = tmp_path / "data"
    suite = open_suite(data, services=[IDENTITY, CREDIT, ROADHEALTH])
    agency = SuiteHome(data).org_key("city-agency")
    headers = {
        "Authorization": "Bearer " + mint_token(agency, org="city-agency", audience="identity")
    }
    with TestClient(suite.app) as client:
        assert client.post("/identity/issuers/me/keys", json={}, headers=headers).status_code == 201
        # A status list read starts identity's block feed, which keeps the list current
        listed = client.get("/identity/status-lists/city-agency/0/revocation", headers=headers)
        assert listed.status_code == 200, listed.text
        started = {t.name for t in threading.enumerate() if t not in before}
        assert {"block-feed", "roadhealth-alerts"} <= started, started
    left = {t.name for t in threading.enumerate() if t not in before and t.is_alive()}
    assert not left & READS_TABLES, left
    # The block feed waits on its node's subscription, which ticks every POLL_S
    deadline = time.monotonic() + POLL_S + 5
    for thread in [t for t in threading.enumerate() if t not in before]:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def test_a_context_stops_the_last_started_first_once_despite_a_failing_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = ServiceContext(
        name="roadhealth",
        ledger=cast(LedgerPort, None),
        database_url=f"sqlite:///{tmp_path}/s.db",
        data_dir=tmp_path,
        operator_org="bsn-operator",
        operator_key=SigningKey.generate(),
    )
    stopped: list[str] = []

    def failing() -> None:
        stopped.append("follower")
        raise RuntimeError("the stream would not close")

    ctx.on_close(lambda: stopped.append("dispatcher"))
    ctx.on_close(failing)
    ctx.on_close(lambda: stopped.append("feed"))
    with caplog.at_level(logging.ERROR, logger="services.common.context"):
        ctx.close()
    assert stopped == ["feed", "follower", "dispatcher"]
    assert "stopping part of the roadhealth service failed" in caplog.text
    ctx.close()  # the app's shutdown and the suite's close may both call it
    assert stopped == ["feed", "follower", "dispatcher"]
