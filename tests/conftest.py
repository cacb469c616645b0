"""Fixtures shared by every test: databases, keys, a genesis, ledgers, nodes and live servers."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from chain.crypto import SigningKey
from chain.db import make_engine
from chain.errors import ChainError
from chain.genesis import Genesis, load_genesis, parse_genesis
from chain.ledger import Ledger
from chain.node import Node, NodeOptions
from chain.store import BlockStore
from chain.tx import Tx, sign_tx

CHAIN_ID = "test-chain"
DURATIONS_KEY = "smartcity/test-seconds"  # in .pytest_cache: each test's time when last run


# -- xdist: the longest modules first, so both workers finish together -------------------------
#
# `--dist loadgroup` hands tests out in collection order, a few at a time, to whichever worker
# asks; a long test handed out last keeps one worker busy while the other idles. So under xdist
# the modules with `slow` tests go first, then the others, each class longest first by the time
# its tests took when they last ran (kept in .pytest_cache; without it, collection order). A
# module's tests stay together and in order, so its module-scoped fixtures are made once.


def _test_id(nodeid: str) -> str:
    """The node id without the `@group` suffix xdist's loadgroup adds."""
    head, _, tail = nodeid.rpartition("@")
    return head if head and "]" not in tail and "::" not in tail else nodeid


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _last_times(config: pytest.Config) -> dict[str, float]:
    cache = getattr(config, "cache", None)  # None under `-p no:cacheprovider`
    return dict(cache.get(DURATIONS_KEY, {})) if cache is not None else {}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """The controller reads the times once for every worker: each worker reading the cache
    itself could see another session's update in between, and xdist aborts a run whose
    workers collected the tests in different orders."""
    node.workerinput[DURATIONS_KEY] = _last_times(node.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput = getattr(config, "workerinput", None)  # on an xdist worker only
    if workerinput is None:
        return
    seconds: dict[str, float] = workerinput.get(DURATIONS_KEY, {})
    slow: set[str] = set()
    module_s: dict[str, float] = {}
    for item in items:
        module = _module_of(item.nodeid)
        module_s[module] = module_s.get(module, 0.0) + seconds.get(_test_id(item.nodeid), 0.0)
        if item.get_closest_marker("slow"):
            slow.add(module)
    rank = {module: n for n, module in enumerate(module_s)}

    def order(item: pytest.Item) -> tuple[bool, float, int]:
        module = _module_of(item.nodeid)
        return module not in slow, -module_s[module], rank[module]

    items.sort(key=order)  # stable: a module's tests keep their order


_test_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up each test's setup, call and teardown (on the xdist controller: every worker's)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        nodeid = _test_id(report.nodeid)
        _test_seconds[nodeid] = _test_seconds.get(nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep the times of the tests this run ran, and the others' from earlier runs."""
    cache = getattr(session.config, "cache", None)
    if "PYTEST_XDIST_WORKER" in os.environ or cache is None or not _test_seconds:
        return
    ran = {nodeid: round(spent, 2) for nodeid, spent in _test_seconds.items()}
    cache.set(DURATIONS_KEY, {**_last_times(session.config), **ran})


def suite_tags(folder: Path) -> set[str]:
    """The tags (smartcity.suite.suite_tag) of every suite initialised under `folder`, when
    its suites' schemas are on a shared PostgreSQL.

    A suite on a shared PostgreSQL keeps each node and service in a schema named after its
    genesis hash (smartcity.suite.shared_database_url), outside the schema a test's `db_url`
    gives it, so dropping that one left them behind: 2,233 of them (84,000 catalog rows) had
    piled up on the CI machine's database, and every PostgreSQL test's table creation slowed
    with them (an identity suite's start 0.89-1.04 s against 0.52-0.55 s without)."""
    from smartcity.suite import tag_of

    if not os.environ.get("SMARTCITY_DATABASE_URL", "").startswith("postgresql"):
        return set()
    tags = set()
    for found in folder.rglob("genesis.json") if folder.is_dir() else ():
        try:
            tags.add(tag_of(load_genesis(found).hash))
        except (ChainError, OSError, ValueError):  # a test's deliberately broken genesis
            continue
    return tags


def drop_suite_schemas(tags: set[str]) -> None:
    """Drop the schemas of the suites `tags` name (their suites closed)."""
    from smartcity.suite import drop_tagged_schemas

    for tag in sorted(tags):
        drop_tagged_schemas(tag, os.environ["SMARTCITY_DATABASE_URL"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Once a test's fixtures are torn down (its suites closed), drop the PostgreSQL schemas of
    the suites it made in its temporary folder: found before the teardown, which may remove the
    folder (tmp_path_retention_policy)."""
    folder = getattr(item, "funcargs", {}).get("tmp_path")
    tags = suite_tags(folder) if isinstance(folder, Path) else set()
    yield
    drop_suite_schemas(tags)


@pytest.fixture(scope="session", autouse=True)
def _session_suite_schemas_dropped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of a session (each xdist worker's), those of suites made by module- and
    session-scoped fixtures, under the session's temporary folder."""
    yield
    drop_suite_schemas(suite_tags(tmp_path_factory.getbasetemp()))


def _backends() -> list[str]:
    """SQLite always; PostgreSQL too when SMARTCITY_DATABASE_URL points at one."""
    url = os.environ.get("SMARTCITY_DATABASE_URL", "")
    return ["sqlite", "postgresql"] if url.startswith("postgresql") else ["sqlite"]


def fresh_database_url(backend: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A URL to an empty database: a SQLite file, or a new PostgreSQL schema (dropped after)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'db-{uuid.uuid4().hex[:8]}.sqlite'}", lambda: None
    base = os.environ["SMARTCITY_DATABASE_URL"]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # No pooled connection idles while the test runs: many tests (and test sessions) share one
    # PostgreSQL, whose default limit is 100 connections
    admin = create_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url, drop = fresh_database_url(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture(scope="session")
def keys() -> SimpleNamespace:
    def seeded(name: str) -> SigningKey:
        return SigningKey.from_seed(name.encode().ljust(32, b"\0")[:32])

    return SimpleNamespace(
        validator=seeded("validator"),
        agency=seeded("agency"),
        road=seeded("road"),
        regulator=seeded("regulator"),
        bank=seeded("bank"),
        outsider=seeded("outsider"),
    )


@pytest.fixture(scope="session")
def genesis(keys: SimpleNamespace) -> Genesis:
    return parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "validators": [
                {"name": "validator-0", "pub_key": keys.validator.public_hex, "power": 1}
            ],
            "organisations": [
                {
                    "id": "city-agency",
                    "name": "Agency",
                    "roles": ["agency", "committee"],
                    "keys": [keys.agency.public_hex],
                },
                {
                    "id": "road-authority",
                    "name": "Roads",
                    "roles": ["road_authority", "committee"],
                    "keys": [keys.road.public_hex],
                },
                {
                    "id": "regulator",
                    "name": "Regulator",
                    "roles": ["regulator", "committee"],
                    "keys": [keys.regulator.public_hex],
                },
                {"id": "bank-a", "name": "Bank", "roles": ["bank"], "keys": [keys.bank.public_hex]},
            ],
        }
    )


@pytest.fixture
def make_ledger(db_url: str, genesis: Genesis) -> Iterator[Callable[..., Ledger]]:
    engines = []

    def make(custom: Genesis | None = None) -> Ledger:
        engine = make_engine(db_url)
        engines.append(engine)
        return Ledger(custom or genesis, BlockStore(engine))

    yield make  # type: ignore[misc]
    for engine in engines:
        engine.dispose()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger()


@pytest.fixture
def node(ledger: Ledger, keys: SimpleNamespace) -> Iterator[Node]:
    running = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    running.start()
    yield running
    running.stop()


@pytest.fixture
def sign() -> Callable[..., Tx]:
    """Sign a call: sign(key, contract, method, args, expiry_height=..., chain_id=...)."""

    def make(
        key: SigningKey,
        contract: str,
        method: str,
        args: dict[str, Any],
        *,
        expiry_height: int = 1000,
        chain_id: str = CHAIN_ID,
        nonce: int | None = None,
    ) -> Tx:
        return sign_tx(
            key,
            chain_id=chain_id,
            contract=contract,
            method=method,
            args=args,
            expiry_height=expiry_height,
            nonce=nonce,
        )

    return make


# Ports for test servers come from below the kernel's ephemeral range (32768-60999 on Linux),
# one block per xdist worker, in turn: a port the kernel hands out as 0 can be taken by any
# outgoing connection's source port (thousands under load) before the server binds it, and the
# client then talks to the wrong socket.
_PORT_BLOCK = 2_000
_PORT_BASE = 12_000
_next_port = [0]
_port_lock = threading.Lock()


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    # A block per worker; the process id spreads concurrent pytest sessions over the blocks
    index = int(worker) if worker.isdigit() else 0
    first = _PORT_BASE + (index + os.getppid()) % 8 * _PORT_BLOCK
    with _port_lock:
        for _ in range(_PORT_BLOCK):
            port = first + (os.getpid() * 7 + _next_port[0]) % _PORT_BLOCK
            _next_port[0] += 1
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port in {first}-{first + _PORT_BLOCK - 1}")


class LiveServer:
    """An ASGI app served by uvicorn on a loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            # In a thread uvicorn installs no signal handlers, so sse-starlette never learns of
            # the shutdown and an event stream a client still follows (a service's block
            # cache) would hold the join until its next block: cancel what is left after 1 s
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server() -> Callable[[Any], LiveServer]:
    return LiveServer


class AlertReceiver:
    """A local webhook receiver keeping every alert POSTed; it fails the first `fail_first`
    calls with HTTP 503 (to exercise retries), and answers `answer_after_s` after an alert
    arrived (a slow webhook; the alert is kept on arrival)."""

    def __init__(self, fail_first: int = 0, answer_after_s: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls += 1
                if receiver.calls <= fail_first:
                    self.send_response(503)
                else:
                    receiver.received.append(json.loads(body))
                    time.sleep(answer_after_s)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # close() does not wait for a slow answer
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
