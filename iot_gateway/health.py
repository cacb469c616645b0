"""GET /healthz (JSON, 503 when not connected) and GET /metrics (Prometheus text)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iot_gateway.gateway import Gateway


class HealthServer:
    """A small HTTP server in a background thread; `port` is the one actually bound."""

    def __init__(self, gateway: Gateway, *, host: str, port: int) -> None:
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


def health_report(gateway: Gateway) -> dict[str, object]:
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


def _handler_for(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                report = health_report(gateway)
                status = 200 if report["status"] == "ok" else 503
                self._send(status, "application/json", json.dumps(report).encode())
            elif self.path == "/metrics":
                body = gateway.metrics.render().encode()
                self._send(200, "text/plain; version=0.0.4; charset=utf-8", body)
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
