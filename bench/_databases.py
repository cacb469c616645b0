"""A bench's own database: a SQLite file, or a schema of its own on a PostgreSQL server, dropped
afterwards (a bench never writes into a schema the tests or the suite use)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool


@contextmanager
def fresh_database(folder: Path, server: str, *, name: str) -> Iterator[str]:
    """The URL of a new database: on `server` (a PostgreSQL URL) a fresh schema, dropped at the
    end; otherwise (`server` empty or not PostgreSQL) `name` as a SQLite file in `folder`."""
    if not server.startswith("postgresql"):
        yield f"sqlite:///{folder / name}"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
