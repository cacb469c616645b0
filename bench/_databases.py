"""A bench's own database: a SQLite file, or a schema of its own on a PostgreSQL server, dropped
afterwards (a bench never writes into a schema the tests or the suite use); and the median
timing of a call that the database benches report."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def bench_database(name: str) -> Iterator[tuple[str, str]]:
    """A fresh database and its backend ("sqlite" or "postgresql"): a schema on the PostgreSQL
    server SMARTCITY_DATABASE_URL names, else the SQLite file `name` in a folder of its own."""
    server = os.environ.get("SMARTCITY_DATABASE_URL", "")
    with tempfile.TemporaryDirectory() as tmp, fresh_database(Path(tmp), server, name=name) as url:
        yield url, url.split(":", 1)[0].split("+", 1)[0]


def ms_per_call(call: Callable[[], object], *, min_calls: int, budget_s: float) -> float:
    """The median of at least `min_calls` calls, more while within `budget_s`."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - started < budget_s:
        before = time.perf_counter()
        call()
        times.append(time.perf_counter() - before)
    return 1000 * statistics.median(times)


def stored_window(seq: int, **fields: Any) -> dict[str, Any]:
    """A road-health window row as a bench stores it straight into `roadhealth_windows`: a car's
    50 Hz, 200-sample window at 12 m/s, anchored; `fields` give what the bench varies (device,
    hash, t0, segment, ...) and may replace any default."""
    return {
        "seq": seq,
        "payload": "{}",
        "topic": "t",
        "rate_hz": 50,
        "lat": 0.0,
        "lon": 0.0,
        "speed_mps": 12.0,
        "samples": 200,
        "vehicle_class": "car",
        "anchor_tx": "a" * 64,
        "leaf_index": 0,
        "root": "r" * 64,
        "anomalies": [],
        **fields,
    }
