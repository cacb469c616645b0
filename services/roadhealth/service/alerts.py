"""Alerts: raised with the data that caused them, listed, and delivered to webhooks (POSTs with
retries and backoff) and an MQTT topic from the alerts table.

Alerts are rows written in the same transaction as the data that raised them, so a rolled-back
request raises none and a crash loses none: a background thread delivers pending rows, retrying
failed webhooks with exponential backoff up to `webhook_max_attempts`. Receivers get the alert
`id` (also in the `Idempotency-Key` header) so a redelivery after a lost answer is recognisable.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlparse

import httpx
from paho.mqtt import publish
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.roadhealth import schemas
from services.roadhealth.errors import OutOfRange
from services.roadhealth.models import RhAlert, RhWebhook
from services.roadhealth.runtime import Runtime, Settings
from services.roadhealth.service.common import segment_row

log = logging.getLogger(__name__)
IDLE_POLL_S = 2.0
# How long `stop` waits for a delivery in flight: the alert being sent goes to every webhook,
# each post bounded by webhook_timeout_s; the alerts after it are left for the next start
STOP_WAIT_S = 30.0


def alert_document(*, alert: RhAlert, city: str) -> dict[str, Any]:
    """What receivers get: the alert, its city and the chain transaction attesting it."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "city": city,
        "segment": alert.segment,
        "data": alert.data,
        "chain_tx": alert.chain_tx,
        "created_at": alert.created_at,
    }


class AlertDispatcher:
    """Delivers pending alerts from a background thread; `kick()` wakes it after a commit."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(timeout=settings.webhook_timeout_s)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="roadhealth-alerts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop delivering: an alert being sent is finished (and recorded), the others stay
        pending for the next start. Returns once the thread has ended (or STOP_WAIT_S)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
            if self._thread.is_alive():
                log.warning("the alert dispatcher is still sending after %.0f s", STOP_WAIT_S)
            self._thread = None
        else:
            self._client.close()  # never started: nothing else closes it

    def kick(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        wait_s = IDLE_POLL_S
        try:
            while not self._stop.is_set():
                self._wake.wait(wait_s)
                self._wake.clear()
                # Let the request that kicked us commit before we look
                if self._stop.wait(0.05):
                    break  # stop() wakes us too: no new pass then
                try:
                    self.deliver_due()
                    due = self._next_due()
                    wait_s = IDLE_POLL_S if due is None else min(IDLE_POLL_S, due - time.time())
                except Exception:  # the database may be briefly unavailable: try again later
                    log.exception("alert delivery pass failed")
                    wait_s = IDLE_POLL_S
        finally:
            self._client.close()  # here, once nothing can post with it any more

    def deliver_due(self) -> int:
        """Attempt every pending alert whose time has come; return how many were delivered."""
        now = time.time()
        delivered = 0
        with self.factory() as session, session.begin():
            # Every road-health process runs a dispatcher: each takes the alerts no other one
            # holds, so an alert is sent once per attempt however many processes there are
            due = session.scalars(
                select(RhAlert)
                .where(RhAlert.pending == 1, RhAlert.next_attempt_at <= now)
                .order_by(RhAlert.id)
                .limit(100)
                .with_for_update(skip_locked=True)
            ).all()
            targets = list(self.settings.webhooks) + list(
                session.scalars(select(RhWebhook.url)).all()
            )
            for alert in due:
                if self._stop.is_set():
                    break  # stopping: the rest stay pending, unattempted, for the next start
                delivered += self._attempt(alert, targets, now)
        return delivered

    def _attempt(self, alert: RhAlert, targets: list[str], now: float) -> int:
        document = alert_document(alert=alert, city=self.settings.city)
        if alert.attempts == 0:
            self._publish_mqtt(document)
        alert.attempts += 1
        errors = []
        for url in targets:
            try:
                response = self._client.post(
                    url, json=document, headers={"Idempotency-Key": f"roadhealth-alert-{alert.id}"}
                )
                if response.status_code >= 300:
                    errors.append(f"{url}: HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {type(exc).__name__}")
        if not errors:
            alert.pending, alert.delivered, alert.last_error = 0, len(targets), None
            return 1
        alert.last_error = "; ".join(errors)
        if alert.attempts >= self.settings.webhook_max_attempts:
            alert.pending = 0  # given up; last_error says why, the alert stays listed
        else:
            alert.next_attempt_at = now + self.settings.retry_base_s * 2 ** (alert.attempts - 1)
        return 0

    def _next_due(self) -> float | None:
        with self.factory() as session:
            value = session.scalars(
                select(RhAlert.next_attempt_at)
                .where(RhAlert.pending == 1)
                .order_by(RhAlert.next_attempt_at)
                .limit(1)
            ).first()
        return None if value is None else float(value)

    def _publish_mqtt(self, document: dict[str, Any]) -> None:
        if not self.settings.mqtt_url:
            return
        url = urlparse(self.settings.mqtt_url)
        auth = {"username": url.username, "password": url.password} if url.username else None
        try:
            publish.single(
                f"city/{self.settings.city}/road/alerts",
                json.dumps(document),
                qos=1,
                hostname=url.hostname or "127.0.0.1",
                port=url.port or 1883,
                auth=auth,  # type: ignore[arg-type]
            )
        except (OSError, ValueError) as exc:
            log.warning("alert %s not published to MQTT: %s", document["id"], exc)


def raise_alert(
    *,
    rt: Runtime,
    session: Session,
    kind: str,
    segment: str,
    chain_tx: str | None,
    data: dict[str, Any],
) -> None:
    """Store an alert; the dispatcher delivers it (webhooks, MQTT) once the request commits."""
    session.add(
        RhAlert(
            kind=kind,
            segment=segment,
            data=data,
            chain_tx=chain_tx,
            created_at=time.time(),
            delivered=0,
            attempts=0,
            next_attempt_at=0.0,
            pending=1,
        )
    )


def list_alerts(*, session: Session, segment: str | None, limit: int) -> list[schemas.AlertView]:
    if not 1 <= limit <= 1000:
        raise OutOfRange("limit must be 1..1000")
    query = select(RhAlert).order_by(RhAlert.id.desc()).limit(limit)
    if segment is not None:
        segment_row(session=session, segment_id=segment)
        query = query.where(RhAlert.segment == segment)
    return [
        schemas.AlertView(
            id=a.id,
            kind=a.kind,
            segment=a.segment,
            data=a.data,
            chain_tx=a.chain_tx,
            created_at=a.created_at,
            delivered=a.delivered,
            attempts=a.attempts,
            last_error=a.last_error,
        )
        for a in session.scalars(query)
    ]


def add_webhook(*, session: Session, url: str, created_by: str) -> schemas.WebhookView:
    row = RhWebhook(url=url, created_by=created_by, created_at=time.time())
    session.add(row)
    session.flush()
    return _webhook_view(row)


def list_webhooks(*, session: Session) -> list[schemas.WebhookView]:
    return [_webhook_view(w) for w in session.scalars(select(RhWebhook).order_by(RhWebhook.id))]


def _webhook_view(row: RhWebhook) -> schemas.WebhookView:
    return schemas.WebhookView(id=row.id, url=row.url, created_by=row.created_by)
