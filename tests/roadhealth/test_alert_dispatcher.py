"""Stopping the alert dispatcher mid-delivery loses and repeats nothing.

A suite's close stops road health's dispatcher (ServiceContext.close); a webhook may be slow to
answer at that moment. The alert being sent is finished and recorded; the ones after it stay
pending, unattempted, and the next start delivers them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from services.common.db import Base, make_session_factory
from services.roadhealth import models  # noqa: F401  (registers the tables on Base.metadata)
from services.roadhealth.models import RhAlert
from services.roadhealth.runtime import Settings
from services.roadhealth.service.alerts import AlertDispatcher

ANSWER_AFTER_S = 0.5


class SlowWebhook:
    """A webhook that answers 200 ANSWER_AFTER_S after each alert arrives."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.first = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                hook.received.append(self.headers["Idempotency-Key"])
                hook.first.set()
                time.sleep(ANSWER_AFTER_S)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook() -> Iterator[SlowWebhook]:
    hook = SlowWebhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def test_a_stop_during_a_delivery_finishes_that_alert_and_leaves_the_rest_pending(
    db_url: str, webhook: SlowWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    _engine, factory = make_session_factory(db_url, Base.metadata)
    with factory() as session, session.begin():
        session.add_all(
            RhAlert(
                kind="condition_changed", segment=f"s{i}", data={}, chain_tx=None, created_at=0.0
            )
            for i in range(3)
        )
    settings = Settings(webhooks=(webhook.url,), load_demo=False, mqtt_url=None)
    dispatcher = AlertDispatcher(factory, settings)
    dispatcher.start()
    dispatcher.kick()
    assert webhook.first.wait(10), "the dispatcher sent nothing"
    with caplog.at_level(logging.WARNING, logger="services.roadhealth.service.alerts"):
        dispatcher.stop()  # while the first alert waits for its answer
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    time.sleep(ANSWER_AFTER_S + 0.5)  # nothing more is sent once stop returned
    assert webhook.received == ["roadhealth-alert-1"]

    def rows() -> list[tuple[int, int, int, int]]:
        with factory() as session:
            found = session.scalars(select(RhAlert).order_by(RhAlert.id)).all()
            return [(a.id, a.pending, a.attempts, a.delivered) for a in found]

    assert rows() == [(1, 0, 1, 1), (2, 1, 0, 0), (3, 1, 0, 0)]
    # The next start sends the two left, once each
    restarted = AlertDispatcher(factory, settings)
    restarted.start()
    restarted.kick()
    deadline = time.monotonic() + 15
    while rows() != [(1, 0, 1, 1), (2, 0, 1, 1), (3, 0, 1, 1)] and time.monotonic() < deadline:
        time.sleep(0.1)
    restarted.stop()
    assert rows() == [(1, 0, 1, 1), (2, 0, 1, 1), (3, 0, 1, 1)]
    assert webhook.received == [f"roadhealth-alert-{i}" for i in (1, 2, 3)]
