"""GET /healthz (liveness), GET /readyz (503 naming the failing check), GET /metrics (Prometheus).

Readiness: connected to the broker, the intake and forward workers alive, and the outbox able
to take a write (docs/operations.md). Metrics are rendered by prometheus_client from the
gateway's own bookkeeping (iot_gateway.prometheus).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from chain.observability import Check, NotReady, liveness, readiness, render
from iot_gateway.metrics import Metrics
from iot_gateway.outbox import Outbox
from iot_gateway.prometheus import gateway_registry
from iot_gateway.source import MqttSource


class Instance(Protocol):
    @property
    def instance(self) -> str: ...


class Observed(Protocol):
    """What the health endpoint reads of a running gateway (iot_gateway.gateway.Gateway,
    which starts the endpoint: naming that class here made an import cycle)."""

    @property
    def metrics(self) -> Metrics: ...
    @property
    def settings(self) -> Instance: ...
    @property
    def source(self) -> MqttSource: ...
    @property
    def outbox(self) -> Outbox: ...
    def is_healthy(self) -> bool: ...
    def backlog(self) -> int: ...
    def anchor_lag_s(self) -> float: ...


class HealthServer:
    """A small HTTP server in a background thread; `port` is the one actually bound."""

    def __init__(self, gateway: Observed, *, host: str, port: int) -> None:
        handler = _handler_for(gateway)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def health_report(gateway: Observed) -> dict[str, object]:
    m = gateway.metrics
    return {
        "status": "ok" if gateway.is_healthy() else "degraded",
        "instance": gateway.settings.instance,
        "mqtt": {
            "connected": gateway.source.connected.is_set(),
            "protocol": gateway.source.protocol,
            "subscription": gateway.source.subscription,
            "connects": gateway.source.connects,
        },
        "accepted": m.total("accepted_total"),
        "duplicates": m.total("duplicates_total"),
        "rejected": m.by_label("rejected_total", "reason"),
        "queue_depth": gateway.backlog(),
        "anchor_lag_s": gateway.anchor_lag_s(),
        "batches": gateway.outbox.batch_states(),
    }


def readiness_checks(gateway: Observed) -> dict[str, Check]:
    def broker() -> None:
        if not gateway.source.connected.is_set():
            raise NotReady("not connected to the MQTT broker")

    def workers() -> None:
        if not gateway.is_healthy() and gateway.source.connected.is_set():
            raise NotReady("an intake or forward worker has stopped")

    return {"broker": broker, "workers": workers, "outbox": outbox_writable(gateway.outbox)}


def outbox_writable(outbox: Outbox) -> Check:
    """The outbox takes a write transaction (on SQLite its transactions begin with the write
    lock, BEGIN IMMEDIATE; on PostgreSQL the session must not be read-only)."""

    def check() -> None:
        try:
            with outbox.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    read_only = conn.execute(text("SHOW transaction_read_only")).scalar()
                    if read_only == "on":
                        raise NotReady("the outbox database is read-only")
                else:
                    conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise NotReady(f"outbox not writable: {exc.__class__.__name__}") from exc

    return check


def _handler_for(gateway: Observed) -> type[BaseHTTPRequestHandler]:
    registry = gateway_registry(gateway)
    checks = readiness_checks(gateway)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                report = {**liveness("gateway"), **health_report(gateway)}
                report["status"] = "ok"  # alive; whether it can work is /readyz
                self._send(200, "application/json", json.dumps(report).encode())
            elif self.path == "/readyz":
                status, body = readiness(checks)
                self._send(status, "application/json", json.dumps(body).encode())
            elif self.path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, render(registry))
            else:
                self._send(404, "application/json", b'{"error":"not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
