"""The chain's state on disk, in three tables.

A key a block creates is appended to `chain_state_log`, in the order the blocks created them,
once: a key it changes is upserted into `chain_state`, keyed by (namespace, key), whose row
then supersedes the key's log row; a key it deletes leaves `chain_state` and is listed in
`chain_state_gone`, which hides its log row; a key created again after that is upserted into
`chain_state` (and leaves the list). So the log holds at most one row a key, and the state is
`chain_state`'s rows and the log's rows neither of the other two tables names (`stored_state`,
read as it streams).

Most keys are created once and never change (an anchor's `batch:<tx hash>` and its root).
Upserted, each landed on a page of the key index at random: a block of 2,000 anchors at 70,000
transactions wrote 6.6 KB a transaction (its WAL and checkpoints), and its state rows cost
20 -> 30 us a transaction as the chain grew. Appended, 2.8 KB and 6-7 us at any length, and the
lone validator commits 6-7 % more (docs/benchmarks.md).

Only a ledger's start and a backup read the state. A database made before the log keeps its
keys in `chain_state` (and a backup of one taken before a node of this version opened it reads
them there); a restored one holds them all there. The change is one-way: a node of an earlier
version would not see the log's keys (docs/operations.md, upgrades).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    exists,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

from chain.errors import StorageError
from chain.state import StateKey, StoredValue
from chain.store_sql import delete_many, insert_many

state_metadata = MetaData()


def _key_and_value(*, keyed: bool) -> list[Column[Any]]:
    """A state row's key (the table's primary key where it is `keyed`) and value columns."""
    return [
        Column("namespace", String(64), primary_key=keyed, nullable=False),
        Column("key", String(300), primary_key=keyed, nullable=False),
        Column("value", Text, nullable=False),
        Column("value_hash", String(64), nullable=False),
    ]


state_rows = Table("chain_state", state_metadata, *_key_and_value(keyed=True))
state_log = Table(
    "chain_state_log",
    state_metadata,
    # The order of creation. SQLite's INTEGER PRIMARY KEY is the table's own rowid: one B-tree,
    # where a key of (height, idx) added an index beside it (appended to as well, but a block's
    # write then cost 14-17 us a transaction against 11-13)
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    *_key_and_value(keyed=False),
)
state_gone = Table(
    "chain_state_gone",
    state_metadata,
    Column("namespace", String(64), primary_key=True),
    Column("key", String(300), primary_key=True),
)


class StateWriter:
    """Writes blocks' state changes into the three tables. What it keeps between blocks (the
    gone keys, the log's next place) is read with its first write, so it must be the database's
    only writer of state: the thread that writes a node's blocks."""

    def __init__(self) -> None:
        self._gone: set[StateKey] | None = None
        self._next_seq: int | None = None

    def write(
        self,
        conn: Connection,
        changes: Mapping[StateKey, StoredValue],
        *,
        created: Set[StateKey] = frozenset(),
    ) -> tuple[list[StateKey], list[StateKey]]:
        """Write state changes in `conn`'s transaction. `created` must be exactly the keys of
        `changes` the state did not hold before them (a key it holds, passed as created, would
        be appended where its keyed row hides it): those are appended to the log (or upserted,
        where deleted before), the others upserted or deleted. Returns the keys deleted and
        the gone keys written again, for `committed`."""
        if conn.dialect.name not in ("postgresql", "sqlite"):
            raise StorageError(
                f"unsupported database {conn.dialect.name}: use SQLite or PostgreSQL"
            )
        if self._gone is None:
            self._gone = _read_gone(conn)
        if self._next_seq is None:
            last = conn.execute(select(func.coalesce(func.max(state_log.c.seq), 0))).scalar_one()
            self._next_seq = int(last) + 1
        gone, seq = self._gone, self._next_seq
        appended: list[tuple[int, str, str, str, str]] = []
        upserted: list[tuple[str, str, str, str]] = []
        deleted: list[StateKey] = []
        revived: list[StateKey] = []
        for skey, stored in changes.items():
            if stored is None:
                if skey not in created:  # else made and deleted within the block: never stored
                    deleted.append(skey)
            elif skey in created and skey not in gone:
                appended.append((seq, skey[0], skey[1], stored[0], stored[1]))
                seq += 1
            else:
                if skey in gone:  # created again after a delete: keyed, its log row stays hidden
                    revived.append(skey)
                upserted.append((skey[0], skey[1], stored[0], stored[1]))
        key = ("namespace", "key")
        if deleted:
            delete_many(conn, state_rows, key, deleted)
            insert_many(conn, state_gone, key, deleted, suffix=" ON CONFLICT DO NOTHING")
        if revived:
            delete_many(conn, state_gone, key, revived)
        if upserted:
            # Both speak this upsert (SQLite since 3.24)
            insert_many(
                conn,
                state_rows,
                ("namespace", "key", "value", "value_hash"),
                upserted,
                suffix=" ON CONFLICT (namespace, key) DO UPDATE"
                " SET value = excluded.value, value_hash = excluded.value_hash",
            )
        if appended:
            self._next_seq = seq  # a gap, should the transaction fail, is harmless
            columns = ("seq", "namespace", "key", "value", "value_hash")
            insert_many(conn, state_log, columns, appended)
        return deleted, revived

    def committed(self, deleted: list[StateKey], revived: list[StateKey]) -> None:
        """Follow a committed write's changes to the kept gone keys (a failed write changed
        neither them nor the table)."""
        if self._gone is not None:
            self._gone.update(deleted)
            self._gone.difference_update(revived)


def _read_gone(conn: Connection) -> set[StateKey]:
    return {(r.namespace, r.key) for r in conn.execute(select(state_gone))}


def stored_state(conn: Connection) -> Iterator[tuple[str, str, str, str]]:
    """Every key's current (namespace, key, canonical value text, value hash): `chain_state`'s
    rows in key order, then, in the order they were created, the log's rows whose key neither
    `chain_state` nor `chain_state_gone` holds. Streamed; on one connection, in one
    transaction where the caller holds one (a backup's snapshot). A database no node of this
    version has opened has no log: its keys are all in `chain_state`."""
    keyed = select(state_rows).order_by(state_rows.c.namespace, state_rows.c.key)
    for r in conn.execute(keyed).yield_per(10_000):
        yield (r.namespace, r.key, r.value, r.value_hash)
    tables = inspect(conn)
    if not (tables.has_table(state_log.name) and tables.has_table(state_gone.name)):
        return
    log = state_log.c
    hidden = [
        exists().where(table.c.namespace == log.namespace, table.c.key == log.key)
        for table in (state_rows, state_gone)
    ]
    alive = (
        select(log.namespace, log.key, log.value, log.value_hash)
        .where(~hidden[0], ~hidden[1])
        .order_by(log.seq)
    )
    for r in conn.execute(alive).yield_per(10_000):
        yield (r.namespace, r.key, r.value, r.value_hash)
