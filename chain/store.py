"""The block store: blocks, transactions with receipts, state and pending transactions.

A block, its transactions, their receipts and the state writes it produced are committed in one
database transaction, so a node killed at any point restarts at its last committed height.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex

from chain.db import driver_mark
from chain.errors import StorageError

metadata = MetaData()
blocks = Table(
    "chain_blocks",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("header", Text, nullable=False),
    Column("certificate", Text, nullable=False),
)
# Keyed by position (height, idx), so a block's rows and their key go at the end of the table;
# a transaction is found by its hash through an index of the hash's first 16 hex digits (the
# only randomly placed index entry, a quarter of the full hash's size). Hash-keyed, each block's
# inserts had landed all over a tree that grows with the chain: committing a block of 2,000
# transactions cost 7 -> 17 us/tx from 2,000 to 80,000 transactions, 7 -> 8 keyed by position.
# A database made before keeps its hash-keyed table, which the same queries use.
txs = Table(
    "chain_txs",
    metadata,
    Column("hash", String(64), nullable=False),
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("expiry_height", BigInteger, nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("receipt", Text, nullable=False),
)
TX_HASH_PREFIX = 16
# Inline numbers, not bound parameters: a query uses an expression index only when its
# expression reads the same as the index's
_tx_hash_prefix = func.substr(txs.c.hash, literal_column("1"), literal_column(str(TX_HASH_PREFIX)))
_tx_hash_index = Index("ix_chain_txs_hash_prefix", _tx_hash_prefix)
state_rows = Table(
    "chain_state",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("value", Text, nullable=False),
    Column("value_hash", String(64), nullable=False),
)
pending = Table(
    "chain_pending",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False, index=True),
    Column("body", Text, nullable=False),
)
validator_sets = Table(
    "chain_validator_sets",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("validators", Text, nullable=False),
)
evidence_rows = Table(
    "chain_evidence",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("height", BigInteger, nullable=False, index=True),
    Column("validator", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("body", Text, nullable=False),
)
meta = Table(
    "chain_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


class TxRow(NamedTuple):
    """A transaction's row as the store keeps it, its fields in the insert's column order (a
    block's thousands go to the driver as they are)."""

    hash: str
    idx: int
    expiry_height: int
    body: str
    receipt: str


@dataclass(frozen=True)
class StateRow:
    namespace: str
    key: str
    value: Any
    value_hash: str


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class BlockStore:
    """SQLAlchemy-backed storage; SQLAlchemy errors become StorageError here."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Whether a block's write deletes its transactions' pending rows: not once the node's
        # mempool keeps them in its journal instead (chain.mempool.JournalPending)
        self.pending_rows = True
        try:
            metadata.create_all(engine)
            # A database made before the hash-prefix index gets it now (once; its old
            # hash-keyed table keeps working, looked up through the new index)
            with engine.begin() as conn:
                conn.execute(CreateIndex(_tx_hash_index, if_not_exists=True))
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot create the chain tables: {exc}") from exc

    # -- reads ---------------------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.name == name)).scalar()

    def tx_count(self) -> int:
        """Transactions stored (one scan of the table: a ledger reads it once, at start)."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(txs)).scalar_one())

    def latest_height(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(blocks.c.height), 0))).scalar_one()
            )

    def block(self, height: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        with self._read() as conn:
            row = conn.execute(
                select(blocks.c.header, blocks.c.certificate).where(blocks.c.height == height)
            ).first()
        return None if row is None else (json.loads(row.header), json.loads(row.certificate))

    def block_txs(self, height: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        with self._read() as conn:
            rows = conn.execute(
                select(txs.c.body, txs.c.receipt).where(txs.c.height == height).order_by(txs.c.idx)
            ).all()
        return [(json.loads(r.body), json.loads(r.receipt)) for r in rows]

    def block_tx_hashes(self, height: int) -> list[str]:
        """A block's transaction hashes in block order, without reading their bodies."""
        with self._read() as conn:
            rows = conn.execute(
                select(txs.c.hash).where(txs.c.height == height).order_by(txs.c.idx)
            ).scalars()
            return list(rows)

    def tx(self, tx_hash: str) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
        with self._read() as conn:
            # By the prefix alone: with `hash = ?` beside it SQLite substitutes the hash into
            # the prefix's expression and scans the table instead of using its index
            rows = conn.execute(
                select(txs.c.hash, txs.c.height, txs.c.body, txs.c.receipt).where(
                    _tx_hash_prefix == tx_hash[:TX_HASH_PREFIX]
                )
            ).all()
        row = next((r for r in rows if r.hash == tx_hash), None)
        return (
            None
            if row is None
            else (int(row.height), json.loads(row.body), json.loads(row.receipt))
        )

    def live_tx_hashes(self, min_expiry: int) -> dict[str, int]:
        """Committed transactions that could still be replayed: hash -> expiry height."""
        with self._read() as conn:
            rows = conn.execute(
                select(txs.c.hash, txs.c.expiry_height).where(txs.c.expiry_height >= min_expiry)
            ).all()
        return {r.hash: int(r.expiry_height) for r in rows}

    def state(self) -> Iterator[StateRow]:
        with self._read() as conn:
            result = conn.execute(select(state_rows)).yield_per(10_000)
            for r in result:
                yield StateRow(r.namespace, r.key, json.loads(r.value), r.value_hash)

    def validator_set_changes(self, below: int) -> list[tuple[int, list[dict[str, Any]]]]:
        """(height, validators for the next height) for every change committed below `below`."""
        with self._read() as conn:
            rows = conn.execute(
                select(validator_sets.c.height, validator_sets.c.validators)
                .where(validator_sets.c.height < below)
                .order_by(validator_sets.c.height)
            ).all()
        return [(int(r.height), json.loads(r.validators)) for r in rows]

    def evidence(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                select(evidence_rows.c.body).order_by(evidence_rows.c.height.desc()).limit(limit)
            ).scalars()
            return [json.loads(r) for r in rows]

    def pending(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(select(pending.c.body).order_by(pending.c.seq)).scalars())

    # -- writes --------------------------------------------------------------------------

    def init_genesis(
        self, genesis_hash: str, chain_id: str, changes: dict[tuple[str, str], tuple[str, str]]
    ) -> None:
        """Record the genesis hash and state once; refuse a database of another chain."""
        existing = self.get_meta("genesis_hash")
        if existing is not None:
            if existing != genesis_hash:
                raise StorageError(
                    f"this database holds chain {self.get_meta('chain_id')}"
                    f" with genesis {existing[:16]}…,"
                    f" not genesis {genesis_hash[:16]}…: use a fresh database"
                )
            return
        with self._write() as conn:
            conn.execute(
                insert(meta),
                [
                    {"name": "genesis_hash", "value": genesis_hash},
                    {"name": "chain_id", "value": chain_id},
                ],
            )
            self._write_state(conn, changes)

    def commit_block(
        self,
        *,
        height: int,
        block_hash: str,
        header: dict[str, Any],
        certificate: dict[str, Any],
        tx_rows: Sequence[TxRow],
        changes: dict[tuple[str, str], tuple[str, str] | None],
        next_validators: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write a block with its transactions, receipts and state changes atomically."""
        with self._write() as conn:
            conn.execute(
                insert(blocks).values(
                    height=height,
                    hash=block_hash,
                    header=_json(header),
                    certificate=_json(certificate),
                )
            )
            if tx_rows:
                _insert_many(
                    conn,
                    txs,
                    ("hash", "idx", "expiry_height", "body", "receipt"),
                    tx_rows,
                    fixed={"height": height},
                )
                if self.pending_rows:
                    _delete_many(conn, pending, ("hash",), [(r.hash,) for r in tx_rows])
            self._write_state(conn, changes)
            if next_validators is not None:
                conn.execute(
                    insert(validator_sets).values(height=height, validators=_json(next_validators))
                )

    def put_meta(self, name: str, value: str) -> None:
        """Set a node-local value durably (e.g. the last signed consensus step)."""
        with self._write() as conn:
            conn.execute(delete(meta).where(meta.c.name == name))
            conn.execute(insert(meta).values(name=name, value=value))

    def add_evidence(self, *, height: int, validator: str, kind: str, body: dict[str, Any]) -> bool:
        """Keep a piece of evidence once; False when it was already known."""
        text = _json(body)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._write() as conn:
            if conn.execute(
                select(evidence_rows.c.digest).where(evidence_rows.c.digest == digest)
            ).first():
                return False
            conn.execute(
                insert(evidence_rows).values(
                    digest=digest, height=height, validator=validator, kind=kind, body=text
                )
            )
        return True

    def add_pending(self, entries: Iterable[tuple[str, int, str]]) -> None:
        """Persist accepted transactions (hash, seq, body) before they are acknowledged."""
        rows = list(entries)
        if rows:
            with self._write() as conn:
                _insert_many(conn, pending, ("hash", "seq", "body"), rows)

    def drop_pending(self, hashes: Sequence[str]) -> None:
        if hashes:
            with self._write() as conn:
                conn.execute(delete(pending).where(pending.c.hash.in_(list(hashes))))

    def clear_pending(self) -> None:
        with self._write() as conn:
            conn.execute(delete(pending))

    def _write_state(
        self, conn: Connection, changes: Mapping[tuple[str, str], tuple[str, str] | None]
    ) -> None:
        gone = [k for k, v in changes.items() if v is None]
        if gone:
            _delete_many(conn, state_rows, ("namespace", "key"), gone)
        rows = [(ns, k, v[0], v[1]) for (ns, k), v in changes.items() if v is not None]
        if not rows:
            return
        if self.engine.dialect.name not in ("postgresql", "sqlite"):
            raise StorageError(
                f"unsupported database {self.engine.dialect.name}: use SQLite or PostgreSQL"
            )
        # Both speak this upsert (SQLite since 3.24)
        _insert_many(
            conn,
            state_rows,
            ("namespace", "key", "value", "value_hash"),
            rows,
            suffix=" ON CONFLICT (namespace, key) DO UPDATE"
            " SET value = excluded.value, value_hash = excluded.value_hash",
        )

    # -- plumbing ------------------------------------------------------------------------

    def _read(self) -> _Guard:
        return _Guard(self.engine, write=False)

    def _write(self) -> _Guard:
        return _Guard(self.engine, write=True)


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


def _insert_many(
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
    # Table and column names are this module's own constants, never input
    head = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "  # noqa: S608
    for chunk in _chunked(rows, params_per_statement(conn) // width):
        params = tuple(itertools.chain.from_iterable(chunk))
        if len(params) != width * len(chunk):  # a row of another shape would shift columns
            raise StorageError(f"rows for {table.name} must have {width} values each")
        conn.exec_driver_sql(head + ", ".join([row] * len(chunk)) + suffix, params)


def _delete_many(
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
    for chunk in _chunked(keys, params_per_statement(conn) // width):
        params = tuple(itertools.chain.from_iterable(chunk))
        if len(params) != width * len(chunk):
            raise StorageError(f"keys for {table.name} must have {width} values each")
        # The table and columns are this module's own constants, never input
        sql = f"DELETE FROM {table.name} WHERE {head} IN ({values}{', '.join([key] * len(chunk))})"  # noqa: S608
        conn.exec_driver_sql(sql, params)


def _chunked(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Guard:
    """A connection (in a transaction when writing) whose SQLAlchemy errors become StorageError."""

    def __init__(self, engine: Engine, *, write: bool) -> None:
        self._engine = engine
        self._write = write
        self._ctx: Any = None

    def __enter__(self) -> Connection:
        try:
            self._ctx = self._engine.begin() if self._write else self._engine.connect()
            conn: Connection = self._ctx.__enter__()
        except SQLAlchemyError as exc:
            raise StorageError(f"database unavailable: {exc.__class__.__name__}: {exc}") from exc
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._ctx.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as err:
            raise StorageError(f"database write failed: {err}") from err
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
