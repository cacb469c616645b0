"""SQLAlchemy engines for SQLite (default) and PostgreSQL, set up for durability."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from chain.errors import StorageError
from chain.secretfile import SecretError, fill_password

_collectors: list[list[Engine]] = []


@contextmanager
def collect_engines() -> Iterator[list[Engine]]:
    """Gather the engines made inside the block, so their owner can dispose of them together."""
    made: list[Engine] = []
    _collectors.append(made)
    try:
        yield made
    finally:
        _collectors.remove(made)


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL and a busy timeout, parent folders created."""
    engine = _make_engine(url)
    for made in _collectors:
        made.append(engine)
    return engine


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # Small pools: a suite opens several nodes and services against one server
        return create_engine(url, pool_pre_ping=True, pool_size=3, max_overflow=4)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL survives a killed process without losing committed transactions; NORMAL sync
        # is durable against process crashes (an OS crash may lose the last commits).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # A chain's indexes are keyed by hashes, so each block's inserts land on pages all over
        # them: checkpoint the log less often (at ~64 MB instead of ~4 MB, so a page a later
        # block touches again is written back once) and cache more of them per connection.
        # Committing a block of anchors on one ledger at 60,000 transactions: 58 -> 43 us/tx.
        cursor.execute("PRAGMA wal_autocheckpoint=16000")
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.close()

    return engine


def database_url_from_env() -> str | None:
    """SMARTCITY_DATABASE_URL, with `{password}` filled from SMARTCITY_DATABASE_PASSWORD_FILE."""
    url = os.environ.get("SMARTCITY_DATABASE_URL")
    if not url:
        return url
    try:
        return fill_password(
            url,
            url_name="SMARTCITY_DATABASE_URL",
            file_variable="SMARTCITY_DATABASE_PASSWORD_FILE",
        )
    except SecretError as exc:
        raise StorageError(str(exc)) from exc


def node_database_url(base: str, node_name: str, *, create: bool = True) -> str:
    """A node's own database inside a shared PostgreSQL: a schema named after the node
    (created unless `create` is False, for a reader of an existing one)."""
    from sqlalchemy import text

    schema = "chain_" + "".join(c if c.isalnum() else "_" for c in node_name.lower())
    if create:
        engine = create_engine(base)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        finally:
            engine.dispose()
    return (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def driver_mark(conn: Connection) -> str:
    """The driver's parameter placeholder for statements sent with `exec_driver_sql`
    (sqlite3: ?, psycopg: %s)."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"
