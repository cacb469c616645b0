"""The block store's bulk statements: many rows in one statement, sent to the driver as they are
(chain.store and chain.store_state write a block's rows through them)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from chain.db import driver_mark
from chain.errors import StorageError

# Parameters a statement carries, at most. The sqlite3 driver gives the GIL up around every
# statement it steps, and under load getting it back waits up to a switch interval (5 ms)
# behind the thread executing the next block: a block's rows in 199-row statements (999
# parameters, the limit SQLite compiled in up to 3.31) waited for it some 35 times a block, and
# the lone validator's writes took 64-69 us a transaction of wall time for 22 of CPU. In
# statements of up to 32,766 parameters (SQLite's limit since 3.32; PostgreSQL's protocol
# allows 65,535) a block of 5,000 anchors is three statements: 34 us, and the lone validator
# 13,300 -> 14,100 tx/s on a quiet machine, 10,100 -> 13,300 beside other work
# (docs/benchmarks.md). A SQLite built with a lower limit is held to its own.
PARAMS_PER_STATEMENT = 32_766


def params_per_statement(conn: Connection) -> int:
    """The parameters one statement on `conn` may carry: PARAMS_PER_STATEMENT, or a SQLite
    connection's own lower limit."""
    if conn.dialect.name != "sqlite":
        return PARAMS_PER_STATEMENT
    driver = conn.connection.driver_connection
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
    return min(PARAMS_PER_STATEMENT, int(limit))


def insert_many(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    suffix: str = "",
    fixed: Mapping[str, int] | None = None,
) -> None:
    """INSERT many rows, as many a statement as params_per_statement allows, sent to the
    driver as they are: the per-transaction rows of a block (thousands) skip SQLAlchemy's
    per-row parameter processing, which cost as much as the database's own work. Plain
    columns only: no type conversion happens here. `fixed`: integer columns of the same value
    in every row, written into the statement (not copied into each row's parameters). The
    rows of one statement must not set the same key twice where `suffix` is an upsert
    (PostgreSQL refuses that)."""
    mark = driver_mark(conn)
    width = len(columns)
    names, values = list(columns), [mark] * width
    for name, value in (fixed or {}).items():
        names.append(name)
        values.append(str(int(value)))  # an integer's digits, nothing else
    row = f"({', '.join(values)})"
    # Table and column names are the store's own constants, never input
    head = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "  # noqa: S608
    for chunk in chunked(rows, params_per_statement(conn) // width):
        params = tuple(itertools.chain.from_iterable(chunk))
        if len(params) != width * len(chunk):  # a row of another shape would shift columns
            raise StorageError(f"rows for {table.name} must have {width} values each")
        conn.exec_driver_sql(head + ", ".join([row] * len(chunk)) + suffix, params)


def delete_many(
    conn: Connection, table: Table, columns: Sequence[str], keys: Sequence[Sequence[Any]]
) -> None:
    """DELETE rows by their key (one value a column in `columns`), as many keys a statement
    as params_per_statement allows (an IN list sent to the driver as it is): SQLAlchemy's own
    IN list cost a cache key and a bound parameter per key, and a statement a key handed the
    GIL over as many times (PARAMS_PER_STATEMENT)."""
    mark, width = driver_mark(conn), len(columns)
    key = mark if width == 1 else f"({', '.join([mark] * width)})"
    # A key of several columns is a row value, which both databases compare with IN (VALUES ..)
    head = columns[0] if width == 1 else f"({', '.join(columns)})"
    values = "" if width == 1 else "VALUES "
    for chunk in chunked(keys, params_per_statement(conn) // width):
        params = tuple(itertools.chain.from_iterable(chunk))
        if len(params) != width * len(chunk):
            raise StorageError(f"keys for {table.name} must have {width} values each")
        # The table and columns are the store's own constants, never input
        sql = f"DELETE FROM {table.name} WHERE {head} IN ({values}{', '.join([key] * len(chunk))})"  # noqa: S608
        conn.exec_driver_sql(sql, params)


def chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
