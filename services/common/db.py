"""A service's own database (off-chain data): engine, and one transaction per request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Depends
from sqlalchemy import Engine, MetaData, func, select
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from chain.db import make_engine

# A PostgreSQL advisory lock is named by a signed 64-bit integer: b"smartcty" as one
CREATE_TABLES_LOCK = 0x736D617274637479


def make_session_factory(url: str, metadata: MetaData) -> tuple[Engine, sessionmaker[Session]]:
    """Create the service's tables if missing and return its engine and session factory."""
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several processes of a service may start at once on a new database (replicas):
            # one creates the tables while the others wait, then find them
            conn.execute(select(func.pg_advisory_xact_lock(CREATE_TABLES_LOCK)))
        metadata.create_all(conn)
    return engine, sessionmaker(engine, expire_on_commit=False)


def session_dependency(factory: sessionmaker[Session]) -> Callable[[], Iterator[Session]]:
    """One session per request; it commits when the handler returns and rolls back on error."""

    def get_session() -> Iterator[Session]:
        with factory() as session, session.begin():
            yield session

    return get_session


def committed_before_response(get_session: Callable[[], Iterator[Session]]) -> Any:
    """`Depends(get_session)` whose commit runs when the handler returns, before the answer.

    FastAPI runs the exit of a yield dependency after the response by default: a client could
    be told 201 for a write whose commit then fails, or read again before the write is visible.
    """
    return Depends(get_session, scope="function")


class Base(DeclarativeBase):
    """Base of every service's ORM models (each service uses its own table prefix)."""
