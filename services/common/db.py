"""A service's own database (off-chain data): engine, and one transaction per request.

A request's session begins its transaction at its first statement (SQLAlchemy's autobegin), so
a request that never touches the database (a verification whose reads are all cached) costs no
connection and no thread hop; the commit or rollback of one that did runs in the thread pool,
off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import Depends
from sqlalchemy import Engine, Index, Inspector, MetaData, func, inspect, select
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.schema import CreateIndex
from starlette.concurrency import run_in_threadpool

from chain.db import make_engine

# A PostgreSQL advisory lock is named by a signed 64-bit integer: b"smartcty" as one
CREATE_TABLES_LOCK = 0x736D617274637479


def make_session_factory(url: str, metadata: MetaData) -> tuple[Engine, sessionmaker[Session]]:
    """Create the service's tables and indexes if missing and return its engine and session
    factory (prepare_schema)."""
    engine = make_engine(url)
    prepare_schema(engine, metadata)
    return engine, sessionmaker(engine, expire_on_commit=False)


def prepare_schema(engine: Engine, metadata: MetaData) -> None:
    """Create the tables `metadata` declares, and the indexes declared on them, that the
    database lacks: a new database gets everything, and one made by an earlier release the
    indexes added since (create_all makes an index only with its table).

    Several processes of a service may start at once (replicas): each looks for what is
    missing and creates it holding the database's lock, so one creates it while the others
    wait, then find it. On SQLite a start that finds nothing missing takes no lock."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(CREATE_TABLES_LOCK)))
        elif conn.dialect.name == "sqlite":
            inspector = inspect(conn)
            if set(metadata.tables) <= set(inspector.get_table_names()) and not _missing_indexes(
                inspector, metadata
            ):
                return  # nothing to make
            # The write lock, taken before the schema is looked at again: the driver would
            # run each CREATE on its own, and two replicas interleaving theirs failed to start
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        metadata.create_all(conn)
        for index in _missing_indexes(inspect(conn), metadata):
            conn.execute(CreateIndex(index, if_not_exists=True))


def _missing_indexes(inspector: Inspector, metadata: MetaData) -> list[Index]:
    """The indexes declared on existing tables that the database does not have."""
    present = set(inspector.get_table_names())
    missing = []
    for table in metadata.sorted_tables:
        if table.name not in present or not table.indexes:
            continue
        have = {ix["name"] for ix in inspector.get_indexes(table.name, schema=table.schema)}
        missing += [ix for ix in table.indexes if ix.name is not None and ix.name not in have]
    return missing


class SessionScope:
    """One session per request; it commits when the handler returns and rolls back on error.

    Called, it is a plain generator of the session (any thread); `scoped` is the same as an
    async FastAPI dependency, which `committed_before_response` uses.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def __call__(self) -> Iterator[Session]:
        with self.factory() as session, session.begin():
            yield session

    async def scoped(self) -> AsyncIterator[Session]:
        session = self.factory()
        try:
            yield session
        except BaseException:
            await _end(session, commit=False)
            raise
        await _end(session, commit=True)


async def _end(session: Session, *, commit: bool) -> None:
    if not session.in_transaction():
        session.close()  # no statement ran: nothing to send to the database
        return
    await run_in_threadpool(_finish, session, commit)


def _finish(session: Session, commit: bool) -> None:
    with session:
        if commit:
            session.commit()
        else:
            session.rollback()


def session_dependency(factory: sessionmaker[Session]) -> SessionScope:
    """One session per request; it commits when the handler returns and rolls back on error."""
    return SessionScope(factory)


def committed_before_response(get_session: Callable[[], Iterator[Session]]) -> Any:
    """`Depends(get_session)` whose commit runs when the handler returns, before the answer.

    FastAPI runs the exit of a yield dependency after the response by default: a client could
    be told 201 for a write whose commit then fails, or read again before the write is visible.
    """
    scoped = get_session.scoped if isinstance(get_session, SessionScope) else get_session
    return Depends(scoped, scope="function")


class Base(DeclarativeBase):
    """Base of every service's ORM models (each service uses its own table prefix)."""
