"""Stopping the alert dispatcher mid-delivery loses and repeats nothing.

A suite's close stops road health's dispatcher (ServiceContext.close); a webhook may be slow to
answer at that moment. The alert being sent is finished and recorded; the ones after it stay
pending, unattempted, and the next start delivers them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from services.common.db import Base, make_session_factory
from services.roadhealth import models  # noqa: F401  (registers the tables on Base.metadata)
from services.roadhealth.models import RhAlert
from services.roadhealth.runtime import Settings
from services.roadhealth.service.alerts import AlertDispatcher

from ..conftest import AlertReceiver

ANSWER_AFTER_S = 0.5


@pytest.fixture
def webhook() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver(answer_after_s=ANSWER_AFTER_S)
    yield receiver
    receiver.close()


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.02)


def test_a_stop_during_a_delivery_finishes_that_alert_and_leaves_the_rest_pending(
    db_url: str, webhook: AlertReceiver, caplog: pytest.LogCaptureFixture
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

    def rows() -> list[tuple[int, int, int, int]]:
        with factory() as session:
            found = session.scalars(select(RhAlert).order_by(RhAlert.id)).all()
            return [(a.id, a.pending, a.attempts, a.delivered) for a in found]

    def sent() -> list[int]:
        return [alert["id"] for alert in webhook.received]

    dispatcher = AlertDispatcher(factory, settings)
    dispatcher.start()
    dispatcher.kick()
    wait_for(lambda: webhook.calls > 0, "alert sent")
    with caplog.at_level(logging.WARNING, logger="services.roadhealth.service.alerts"):
        dispatcher.stop()  # while the first alert waits for its answer
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    time.sleep(ANSWER_AFTER_S + 0.5)  # nothing more is sent once stop returned
    assert sent() == [1]
    assert rows() == [(1, 0, 1, 1), (2, 1, 0, 0), (3, 1, 0, 0)]
    # The next start sends the two left, once each
    restarted = AlertDispatcher(factory, settings)
    restarted.start()
    restarted.kick()
    done = [(1, 0, 1, 1), (2, 0, 1, 1), (3, 0, 1, 1)]
    wait_for(lambda: rows() == done, "delivery of the two left")
    restarted.stop()
    assert sent() == [1, 2, 3]
