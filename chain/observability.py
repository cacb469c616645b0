"""Operations endpoints for every process: Prometheus `/metrics`, `/healthz` and `/readyz`.

Each process (or app, in tests) gets its own `CollectorRegistry`, so many apps built in one
interpreter never collide on metric names. `instrument(app, ...)` adds:

- a pure-ASGI middleware counting requests and timing them by route *template* (e.g.
  `/chain/v1/txs/{tx_hash}`, never the raw path, so label cardinality stays bounded);
- `GET /metrics` (the Prometheus text format, rendered by prometheus_client);
- `GET /healthz` (liveness: the process answers) and `GET /readyz` (readiness: every named
  check passes; 503 naming the failing check's reason otherwise). Both are unauthenticated.

Domain collectors read their numbers from the objects that already keep them (the node's
ledger and mempool, the row counts a service's database keeps) at scrape time, so nothing is
counted twice and no scrape scans a table.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from importlib import metadata
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from chain import row_counts, smt, zip215
from chain.errors import ChainError

if TYPE_CHECKING:
    from chain.node import Node

Check = Callable[[], None]  # returns when healthy; raises (NotReady or anything) with the reason
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "<unmatched>"
REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_SHAPE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_request_id: ContextVar[str | None] = ContextVar("smartcity_request_id", default=None)
OPS_PATHS = ("/metrics", "/healthz", "/readyz")
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A node with peers whose newest block is older than this is behind (blocks come every few
# seconds even without transactions: the engine's empty-block interval is 5 s)
MAX_TIP_AGE_S = 60.0


class NotReady(ChainError):
    """A readiness check failed; the message says why."""


@functools.cache
def build_version() -> str:
    """The installed version (read once: /healthz answers it on every probe)."""
    try:
        return metadata.version("smartcity")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def new_registry(process: str) -> CollectorRegistry:
    """A registry of one's own with the process collectors and `smartcity_build_info`."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("smartcity_build", "Version of the suite this process runs.", registry=registry).info(
        {
            "version": build_version(),
            "process": process,
            "python": platform.python_version(),
            # c, or python where the C tree was not built (slower; the same roots)
            "state_tree": smt.IMPLEMENTATION,
            # batch: Ed25519 batches checked in one multiplication in C (chain.zip215); single
            # where that extension was not built (the same answers, one check a signature,
            # and a forgery's rule check in Python, about 5 ms)
            "signature_checks": "batch" if zip215.batches_in_c else "single",
        }
    )
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


# -- HTTP request metrics ------------------------------------------------------------------


class HttpMetrics:
    """Request count and latency by route template, method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "smartcity_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "smartcity_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: until it closes), by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)


def current_request_id() -> str | None:
    """The id of the HTTP request being served (log lines carry it), if any."""
    return _request_id.get()


def _request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a plain token, else a fresh one."""
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            text_value = str(value.decode("latin-1"))
            if _REQUEST_ID_SHAPE.match(text_value):
                return text_value
    return uuid.uuid4().hex[:16]


def route_template(scope: Scope) -> str:
    """The matched route's template under its mounts, e.g. `/nodes/{...}` → `/chain/v1/...`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    root = str(scope.get("root_path", "")).removeprefix(str(scope.get("app_root_path") or ""))
    return root + path


class MetricsMiddleware:
    """Pure ASGI (streams such as SSE pass through untouched), records every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        request_id = _request_id_of(scope)
        token = _request_id.set(request_id)

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                headers = [*message.get("headers", [])]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            _request_id.reset(token)
            self.metrics.observe(
                route_template(scope),
                str(scope.get("method", "")),
                status[0],
                time.perf_counter() - started,
            )


# -- health and readiness ------------------------------------------------------------------


def run_checks(checks: Mapping[str, Check]) -> dict[str, dict[str, Any]]:
    """Run each check; a failure's reason is its message (never a traceback)."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in list(checks.items()):
        try:
            check()
        except Exception as exc:  # a check reports any failure as not ready, with its reason
            results[name] = {"ok": False, "reason": str(exc) or exc.__class__.__name__}
        else:
            results[name] = {"ok": True}
    return results


def readiness(checks: Mapping[str, Check]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of a readiness probe: 200 when every check passes, else 503."""
    results = run_checks(checks)
    failed = [f"{name}: {r['reason']}" for name, r in results.items() if not r["ok"]]
    if failed:
        return 503, {"status": "unavailable", "reason": "; ".join(failed), "checks": results}
    return 200, {"status": "ready", "checks": results}


def liveness(process: str) -> dict[str, Any]:
    return {"status": "ok", "process": process, "version": build_version()}


def instrument(
    app: FastAPI,
    *,
    process: str,
    checks: Mapping[str, Check],
    registry: CollectorRegistry | None = None,
    collectors: Iterable[Collector] = (),
) -> CollectorRegistry:
    """Add request metrics, `/metrics`, `/healthz` and `/readyz` to `app`; returns its registry."""
    registry = registry or new_registry(process)
    for collector in collectors:
        registry.register(collector)
    metrics = HttpMetrics(registry)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Replace any older health route, and put these first so no mount or catch-all shadows them
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in OPS_PATHS
    ]
    before = len(app.router.routes)

    async def metrics_endpoint() -> Response:
        body = await run_in_threadpool(render, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz() -> dict[str, Any]:
        return liveness(process)

    async def readyz() -> JSONResponse:
        status, body = await run_in_threadpool(readiness, checks)
        return JSONResponse(body, status_code=status)

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["operations"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["operations"])
    added = app.router.routes[before:]
    app.router.routes[:] = added + app.router.routes[:before]
    # Parts started later (the suite's gateway) add their collectors and checks here
    app.state.metrics_registry = registry
    app.state.readiness_checks = checks
    return registry


# -- checks --------------------------------------------------------------------------------


def database_check(engine: Engine) -> Check:
    """The database answers a trivial query."""

    def check() -> None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise NotReady(f"database unavailable: {exc.__class__.__name__}") from exc

    return check


def node_checks(node: Node) -> dict[str, Check]:
    """A node is ready when its store answers, it runs, and (with peers) it is not behind."""

    def running() -> None:
        if node.fatal is not None:
            raise NotReady(f"stopped after an error: {node.fatal}")
        if node.ledger.writer_error is not None:
            raise NotReady(f"block writer stopped: {node.ledger.writer_error}")
        engine = node.engine
        thread = getattr(engine, "_thread", None) if engine is not None else node._thread
        produces = node.key is not None or engine is not None
        if produces and (thread is None or not thread.is_alive()):
            raise NotReady("consensus engine not running")

    def synced() -> None:
        if node.engine is None:
            return
        header = node.ledger.last_header
        if header is None:
            raise NotReady("no block committed yet")
        age_s = time.time() - header.time_ms / 1000
        if age_s > MAX_TIP_AGE_S:
            raise NotReady(f"latest block {header.height} is {age_s:.0f} s old: catching up")

    return {
        "database": database_check(node.ledger.store.engine),
        "engine": running,
        "synced": synced,
    }


# -- domain collectors ---------------------------------------------------------------------


def _peers_of(node: Node) -> int:
    transport = getattr(node.engine, "transport", None)
    if transport is None:
        return 0
    hub = getattr(transport, "hub", None)
    if hub is not None:  # in-process validators: every node of the hub not cut off
        return len(hub.peers(transport.me))
    return len(getattr(transport, "connected", ()))


class NodeCollector(Collector):
    """Height, round, mempool, peers and committed transactions of each node, labelled by name."""

    def __init__(self, nodes: Callable[[], Mapping[str, Node]]) -> None:
        self.nodes = nodes

    def collect(self) -> Iterator[Metric]:
        labels = ["node"]
        height = GaugeMetricFamily(
            "smartcity_chain_height", "Latest committed height.", labels=labels
        )
        round_ = GaugeMetricFamily(
            "smartcity_consensus_round", "Consensus round at the current height.", labels=labels
        )
        mempool = GaugeMetricFamily(
            "smartcity_mempool_size", "Transactions waiting in the mempool.", labels=labels
        )
        peers = GaugeMetricFamily("smartcity_p2p_peers", "Peers connected.", labels=labels)
        age = GaugeMetricFamily(
            "smartcity_chain_tip_age_seconds", "Age of the latest block.", labels=labels
        )
        healthy = GaugeMetricFamily(
            "smartcity_node_healthy", "1 unless block production stopped.", labels=labels
        )
        committed = CounterMetricFamily(
            "smartcity_chain_txs_committed", "Transactions committed on the chain.", labels=labels
        )
        now_s = time.time()
        for name, node in self.nodes().items():
            height.add_metric([name], node.ledger.height)
            machine = getattr(node.engine, "machine", None)
            round_.add_metric([name], getattr(machine, "round", 0))
            mempool.add_metric([name], len(node.mempool))
            peers.add_metric([name], _peers_of(node))
            healthy.add_metric([name], float(node.fatal is None))
            header = node.ledger.last_header
            if header is not None:
                age.add_metric([name], max(0.0, now_s - header.time_ms / 1000))
            committed.add_metric([name], node.ledger.txs_stored)
        yield from (height, round_, mempool, peers, age, healthy, committed)


class TableCountCollector(Collector):
    """Rows in a service's tables as gauges (e.g. ratings issued), read at scrape time from the
    counts the database keeps (chain.row_counts), so a scrape never scans a table."""

    def __init__(self, engine: Engine, gauges: Mapping[str, tuple[str, str]]) -> None:
        self.engine = engine
        self.gauges = gauges  # metric name -> (table, help)
        self.tables = {table for table, _ in gauges.values()}
        self.counted: set[str] = set()
        self._start_counting()

    def _start_counting(self) -> None:
        """Count the tables that exist; one created later is counted at a later scrape."""
        if self.counted == self.tables:
            return
        with contextlib.suppress(SQLAlchemyError):  # the database down: again at the next scrape
            self.counted = row_counts.start_counting(self.engine, self.tables)

    def collect(self) -> Iterator[Metric]:
        self._start_counting()
        try:
            found = row_counts.read_counts(self.engine, self.counted) if self.counted else {}
        except SQLAlchemyError:
            return  # the database down: leave the gauges out
        for name, (table, help_text) in self.gauges.items():
            if table in found:  # a table not created yet is left out
                yield GaugeMetricFamily(name, help_text, value=float(found[table]))
