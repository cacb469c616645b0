"""The block store: blocks, transactions with receipts, state and pending transactions.

A block, its transactions, their receipts and the state writes it produced are committed in one
database transaction, so a node killed at any point restarts at its last committed height.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence, Set
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

from chain.errors import StorageError
from chain.state import StateKey, Stored
from chain.store_sql import delete_many, insert_many
from chain.store_state import StateWriter, state_metadata, stored_state

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
            state_metadata.create_all(engine)
            # A database made before the hash-prefix index gets it now (once; its old
            # hash-keyed table keeps working, looked up through the new index)
            with engine.begin() as conn:
                conn.execute(CreateIndex(_tx_hash_index, if_not_exists=True))
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot create the chain tables: {exc}") from exc
        self._state = StateWriter()

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
        """Every key's current value (a ledger reads them once, at its start)."""
        with self._read() as conn:
            for namespace, key, value, digest in stored_state(conn):
                yield StateRow(namespace, key, json.loads(value), digest)

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
            written = self._state.write(conn, changes)
        self._state.committed(*written)

    def commit_block(
        self,
        *,
        height: int,
        block_hash: str,
        header: dict[str, Any],
        certificate: dict[str, Any],
        tx_rows: Sequence[TxRow],
        changes: Stored,
        created: Set[StateKey] = frozenset(),
        next_validators: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write a block with its transactions, receipts and state changes atomically.
        `created`: the keys of `changes` the state did not hold before the block, which are
        appended to the state log (chain.store_state: the others are upserted or deleted)."""
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
                insert_many(
                    conn,
                    txs,
                    ("hash", "idx", "expiry_height", "body", "receipt"),
                    tx_rows,
                    fixed={"height": height},
                )
                if self.pending_rows:
                    delete_many(conn, pending, ("hash",), [(r.hash,) for r in tx_rows])
            written = self._state.write(conn, changes, created=created)
            if next_validators is not None:
                conn.execute(
                    insert(validator_sets).values(height=height, validators=_json(next_validators))
                )
        self._state.committed(*written)

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
                insert_many(conn, pending, ("hash", "seq", "body"), rows)

    def drop_pending(self, hashes: Sequence[str]) -> None:
        if hashes:
            with self._write() as conn:
                conn.execute(delete(pending).where(pending.c.hash.in_(list(hashes))))

    def clear_pending(self) -> None:
        with self._write() as conn:
            conn.execute(delete(pending))

    # -- plumbing ------------------------------------------------------------------------

    def _read(self) -> _Guard:
        return _Guard(self.engine, write=False)

    def _write(self) -> _Guard:
        return _Guard(self.engine, write=True)


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
