"""The embedded suite: one process serving the chain's nodes and every registered service."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from chain.api import create_app as chain_app
from chain.cluster import open_cluster
from chain.db import collect_engines, node_database_url, sqlite_url
from chain.home import SuiteHome
from services.common.context import ServiceContext
from services.common.ledger import EmbeddedLedger
from smartcity.composition import Suite as Suite
from smartcity.dashboard import mount_dashboard
from smartcity.demo import OPERATOR_ORG as OPERATOR_ORG
from smartcity.demo import init_suite
from smartcity.ops import instrument_suite
from smartcity.registry import SERVICES, ServiceEntry, genesis_contracts

log = logging.getLogger(__name__)
DEMO_CHAIN_PREFIX = "smartcity-demo"


def demo_chain_id() -> str:
    """A chain id of its own for each demo chain, so a bundle from another demo chain is told
    apart by its chain id before any signature is checked."""
    return f"{DEMO_CHAIN_PREFIX}-{secrets.token_hex(3)}"


class BuiltOnFirstUse:
    """An ASGI app built when its first request arrives. The suite mounts every node's API, and
    most are never called in a run; building the five of them was a third of the CPU of opening
    a suite (FastAPI's route and pydantic setup), paid at start by `up` and by every test that
    opens one."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            with self._lock:  # the suite may be served by several threads' event loops
                if self._app is None:
                    self._app = self._build()
                app = self._app
        await app(scope, receive, send)


def shared_database_url(
    data: Path, name: str, base: str | None, *, create: bool = True
) -> str | None:
    """Where `up` keeps node or service NAME of the suite in DATA on the shared PostgreSQL
    `base`: a schema of its own named after the chain (so one server hosts several suites,
    stable across restarts). None when `base` is not PostgreSQL."""
    if base and base.startswith("postgresql"):
        return node_database_url(base, f"{suite_tag(data)}_{name}", create=create)
    return None


SUITE_TAG_DIGITS = 12  # a suite's schemas are chain_<tag>_<name>, the tag its genesis hash's start


def tag_of(genesis_hash: str) -> str:
    """The tag naming the schemas of the suite with this genesis hash."""
    return genesis_hash[:SUITE_TAG_DIGITS]


def is_suite_tag(value: str) -> bool:
    return len(value) == SUITE_TAG_DIGITS and all(c in "0123456789abcdef" for c in value)


def suite_tag(data: Path) -> str:
    """The tag of the suite in DATA."""
    return tag_of(SuiteHome(data).genesis().hash)


@contextlib.contextmanager
def _server(base: str) -> Iterator[Engine]:
    """An engine on the shared PostgreSQL `base` for one administrative task."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(base, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def suites_on_server(base: str) -> dict[str, list[str]]:
    """Every suite's schemas in the shared PostgreSQL `base` (its nodes' and its services', as
    shared_database_url names them), by tag, each tag's in name order: what `smartcity
    drop-schemas --list` shows, so a suite whose folder is gone can be found."""
    from sqlalchemy import text

    pattern = f"^chain_[0-9a-f]{{{SUITE_TAG_DIGITS}}}_"
    with _server(base) as engine, engine.connect() as conn:
        names = conn.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname ~ :p ORDER BY nspname"),
            {"p": pattern},
        ).scalars()
        found: dict[str, list[str]] = {}
        for name in names:
            found.setdefault(name[len("chain_") :][:SUITE_TAG_DIGITS], []).append(name)
        return found


def drop_tagged_schemas(tag: str, base: str) -> list[str]:
    """Drop the schemas of the suite `tag` names from the shared PostgreSQL `base`, with every
    table in them; the schemas dropped. Deleting a suite's data folder leaves them, and
    thousands left on one server slowed every table creation on it."""
    from sqlalchemy import text

    if not is_suite_tag(tag):
        raise ValueError(f"a suite's tag is {SUITE_TAG_DIGITS} lowercase hex digits, not {tag!r}")
    schemas = suites_on_server(base).get(tag, [])
    with _server(base) as engine:
        for schema in schemas:  # one transaction each: a suite's tables would pass max_locks
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    return schemas


def suite_schemas(data: Path, base: str) -> list[str]:
    """The schemas the suite in DATA keeps in the shared PostgreSQL `base`."""
    return suites_on_server(base).get(suite_tag(data), [])


def drop_suite_schemas(data: Path, base: str) -> list[str]:
    """Drop the schemas the suite in DATA keeps in the shared PostgreSQL `base`."""
    return drop_tagged_schemas(suite_tag(data), base)


def service_database_url(data: Path, name: str) -> str:
    """The service's database: in a shared PostgreSQL, a schema of its own named after the
    chain (so one server hosts several suites); else its own SQLite file in the data folder."""
    base = os.environ.get("SMARTCITY_DATABASE_URL")
    return shared_database_url(data, name, base) or base or sqlite_url(data / f"{name}.db")


def open_suite(
    data: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    validators: int = 4,
    observers: int = 1,
    database_url: str | None = None,
    services: list[ServiceEntry] | None = None,
    crypto: str = "ed25519-sha256",
) -> Suite:
    """Initialise `data` on first run, open its nodes, and mount the chain and the services."""
    with collect_engines() as engines:
        entries = SERVICES if services is None else services
        created = not (data / "genesis.json").exists()
        if created:
            init_suite(
                data,
                validators=validators,
                observers=observers,
                chain_id=demo_chain_id(),
                api_url=f"http://{host}:{port}/chain",
                contracts=genesis_contracts(entries),
                crypto=crypto,
            )
        base = database_url or os.environ.get("SMARTCITY_DATABASE_URL")
        names = [p.name for p in sorted((data / "nodes").iterdir())]
        # Nodes share a PostgreSQL as one schema each; on SQLite each keeps a file in its home
        found = {n: shared_database_url(data, n, base) for n in names}
        urls = {n: url for n, url in found.items() if url is not None} or None
        cluster = open_cluster(data, database_urls=urls)
        app = FastAPI(title="smartcity suite", version="1")
        suite = Suite(app=app, cluster=cluster, data=data, created=created)
        app.mount("/chain", chain_app(suite.node))
        for name, node in cluster.nodes.items():
            app.mount(f"/nodes/{name}", BuiltOnFirstUse(partial(chain_app, node)))
        operator_key = SuiteHome(data).org_key(OPERATOR_ORG)
        contexts: dict[str, ServiceContext] = {}
        for entry in entries:
            context = ServiceContext(
                name=entry.name,
                ledger=EmbeddedLedger(suite.node),
                database_url=database_url or service_database_url(data, entry.name),
                data_dir=data,
                operator_org=OPERATOR_ORG,
                operator_key=operator_key,
            )
            service = entry.app()(context)
            suite.services[entry.name] = service
            app.mount(f"/{entry.name}", service)
            contexts[entry.name] = context
        # One /metrics, /healthz and /readyz for the whole process (docs/operations.md)
        instrument_suite(suite, contexts)

    mount_dashboard(app, suite)

    def close() -> None:
        # The services' threads first: they read their tables and the chain until stopped
        for context in contexts.values():
            context.close()
        cluster.stop()
        for engine in engines:
            engine.dispose()

    app.router.on_startup.append(cluster.start)
    app.router.on_shutdown.append(close)
    return suite
