"""Exact row counts of chosen tables, read without scanning them: counts the database keeps.

`SELECT count(*)` scans the whole table on SQLite and on PostgreSQL (neither keeps a row
count), and road health's windows grow with every telemetry message. `max(id)` is not the
count either: on PostgreSQL a sequence value taken by an insert that rolled back or lost a
unique conflict (two replicas storing one reading) is never handed out again, and tables
such as the potholes lose rows. So triggers on each counted table keep its count, inside the
transaction of every insert and delete, whichever process, replica or release wrote it:

- SQLite: a row trigger adds one to (or takes one from) the table's row of
  `smartcity_row_counts`. SQLite has one writer at a time, so the counter costs no concurrency.
- PostgreSQL: a statement trigger appends the statement's count to
  `smartcity_row_count_deltas`. Updating one counter row there would hold its lock until
  commit and queue every replica's ingest behind it; appended rows lock nothing. A read folds
  the deltas committed since the previous read into the counts first, so it costs what was
  written since then, never what the table holds.

A table starts being counted once, by the first process that finds it uncounted: under a lock
it creates the triggers and seeds the count with one count(*) in the same transaction
(PostgreSQL's CREATE TRIGGER waits for the table's writers and holds off new ones until it
commits; SQLite's write lock does the same), so no row is missed or counted twice.

A known gap: SQLite's `INSERT OR REPLACE` deletes without firing delete triggers; no service
writes a counted table that way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
    text,
)

COUNTS = "smartcity_row_counts"
DELTAS = "smartcity_row_count_deltas"
# Counted statements on PostgreSQL, numbered so that every FOLD_EVERY-th folds the deltas
STATEMENTS = "smartcity_row_count_statements"
FOLD_EVERY = 1000
# A PostgreSQL advisory lock: b"smartcnt" as a signed 64-bit integer
COUNTS_LOCK = 0x736D617274636E74
# Every name put into SQL text here is a constant or a table matched by _NAME (the S608 noqas);
# 42 characters keep the trigger names under PostgreSQL's 63
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,42}$")

_metadata = MetaData()
counts = Table(
    COUNTS,
    _metadata,
    Column("table_name", String(64), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
deltas = Table(
    DELTAS,
    _metadata,
    Column("table_name", String(64), nullable=False),
    Column("n", BigInteger, nullable=False),
)


def start_counting(engine: Engine, tables: Iterable[str]) -> set[str]:
    """Count each of `tables` that exists (installing its triggers if no process did yet);
    returns the tables counted."""
    wanted = sorted(set(tables))
    for table in wanted:
        if not _NAME.match(table):
            raise ValueError(f"not a table name to count: {table!r}")
    with engine.connect() as conn:
        if inspect(conn).has_table(COUNTS) and _counted(conn, wanted) == set(wanted):
            return set(wanted)  # the usual start: nothing to install, no lock taken
    with engine.begin() as conn:
        _lock(conn)
        postgres = conn.dialect.name == "postgresql"
        _metadata.create_all(conn, tables=[counts, deltas] if postgres else [counts])
        present = set(inspect(conn).get_table_names())
        counted = _counted(conn, wanted)
        if postgres and counted != set(wanted):
            _create_functions(conn)
        for table in wanted:
            if table in present and table not in counted:
                _install_triggers(conn, table)
                rows = select(func.count()).select_from(text(table)).scalar_subquery()
                conn.execute(counts.insert().values(table_name=table, n=rows))
                counted.add(table)
    return counted


def read_counts(engine: Engine, tables: Iterable[str]) -> dict[str, int]:
    """The row count of each counted table among `tables` (exact as of one committed state)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            _fold(conn)
        rows = conn.execute(
            select(counts.c.table_name, counts.c.n).where(counts.c.table_name.in_(list(tables)))
        )
        return {str(name): int(n) for name, n in rows}


def _counted(conn: Connection, tables: list[str]) -> set[str]:
    found = conn.execute(select(counts.c.table_name).where(counts.c.table_name.in_(tables)))
    return {str(name) for name in found.scalars()}


def _lock(conn: Connection) -> None:
    """Hold off other processes installing or folding until this transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(COUNTS_LOCK)))
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _fold(conn: Connection) -> None:
    """Move the committed deltas into the counts (one folder at a time: two deleting the same
    rows in different orders could deadlock)."""
    _lock(conn)
    conn.execute(text(_fold_sql(DELTAS, COUNTS)))


def _fold_sql(deltas_table: str, counts_table: str) -> str:
    return (
        f"WITH folded AS (DELETE FROM {deltas_table} RETURNING table_name, n),"  # noqa: S608
        " summed AS (SELECT table_name, sum(n) AS n FROM folded GROUP BY table_name)"
        f" UPDATE {counts_table} AS c SET n = c.n + summed.n FROM summed"
        " WHERE c.table_name = summed.table_name"
    )


def _create_functions(conn: Connection) -> None:
    """The PostgreSQL trigger functions, writing to this schema's deltas whatever the writer's
    search_path. Every FOLD_EVERY-th counted statement also folds the deltas, if no other
    transaction is folding (a try-lock: a writer never waits for one): where nothing scrapes,
    the deltas would otherwise gain a row for every statement (every stored window) for good.
    Folded in the writer's transaction, its own delta included, they stand or fall with it."""
    schema = conn.dialect.identifier_preparer.quote(str(conn.scalar(select(func.current_schema()))))
    statements = f"{schema}.{STATEMENTS}"
    conn.execute(text(f"CREATE SEQUENCE IF NOT EXISTS {statements}"))
    fold = _fold_sql(f"{schema}.{DELTAS}", f"{schema}.{COUNTS}")
    for name, rows, sign in (("inserted", "new_rows", ""), ("deleted", "old_rows", "-")):
        conn.execute(
            text(
                f"CREATE OR REPLACE FUNCTION smartcity_count_{name}() RETURNS trigger"  # noqa: S608
                " LANGUAGE plpgsql AS $$ DECLARE k bigint; BEGIN"
                f" SELECT count(*) INTO k FROM {rows};"
                " IF k = 0 THEN RETURN NULL; END IF;"
                f" INSERT INTO {schema}.{DELTAS} (table_name, n) VALUES (TG_TABLE_NAME, {sign}k);"
                f" IF nextval('{statements}') % {FOLD_EVERY} = 0"
                f" AND pg_try_advisory_xact_lock({COUNTS_LOCK}) THEN {fold}; END IF;"
                " RETURN NULL; END $$"
            )
        )


def _install_triggers(conn: Connection, table: str) -> None:
    if conn.dialect.name == "postgresql":
        for event, name, rows in (("INSERT", "inserted", "NEW"), ("DELETE", "deleted", "OLD")):
            conn.execute(
                text(
                    f"CREATE TRIGGER smartcity_count_{name}_{table} AFTER {event} ON {table}"
                    f" REFERENCING {rows} TABLE AS {rows.lower()}_rows FOR EACH STATEMENT"
                    f" EXECUTE FUNCTION smartcity_count_{name}()"
                )
            )
        return
    for event, name, step in (("INSERT", "inserted", "+ 1"), ("DELETE", "deleted", "- 1")):
        conn.execute(
            text(
                f"CREATE TRIGGER IF NOT EXISTS smartcity_count_{name}_{table}"  # noqa: S608
                f" AFTER {event} ON {table} BEGIN UPDATE {COUNTS} SET n = n {step}"
                f" WHERE table_name = '{table}'; END"
            )
        )
