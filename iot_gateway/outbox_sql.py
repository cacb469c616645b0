"""The outbox's tables and the statements the intake runs on every stored group.

The insert is written as one driver statement per ROWS_PER_INSERT rows: built by SQLAlchemy
(insertmanyvalues), its parameters cost more CPU than SQLite spent inserting them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection

from chain import merkle
from chain.db import driver_mark

metadata = MetaData()

messages = Table(
    "iot_gateway_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("topic", String(300), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON, signature included
    Column("hash", String(64), nullable=False),
    Column("owner", String(64), nullable=False),  # the gateway instance that accepted it
    Column("stored_at", Float, nullable=False),
    Column("batch_id", Integer, nullable=True),
    Column("leaf_index", Integer, nullable=True),
    UniqueConstraint("device", "seq", name="uq_iot_gateway_messages_device_seq"),
    Index("ix_iot_gateway_messages_pending", "owner", "batch_id", "id"),
)

batches = Table(
    "iot_gateway_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner", String(64), nullable=False),
    Column("root", String(64), nullable=False),
    Column("count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("first_stored_at", Float, nullable=False),
    Column("anchor_tx", String(64), nullable=True),
    Column("anchored_at", Float, nullable=True),
    Column("forwarded_at", Float, nullable=True),
    Column("state", String(16), nullable=False),  # filling, open, anchored, forwarded, refused
    Column("error", Text, nullable=True),
    Index("ix_iot_gateway_batches_state", "owner", "state", "id"),
)

devices = Table(
    "iot_gateway_devices",
    metadata,
    Column("device", String(64), primary_key=True),
    Column("min_seq", BigInteger, nullable=False),
    Column("max_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
)


class MessageRow(NamedTuple):
    """A message as the intake writes it (fields in the insert's column order)."""

    device: str
    seq: int
    topic: str
    payload: str  # canonical JSON, signature included
    hash: str
    owner: str
    stored_at: float
    batch_id: int  # the batch it is numbered into when stored (state filling until sealed)
    leaf_index: int


MESSAGE_COLUMNS = MessageRow._fields
ROWS_PER_INSERT = 500  # 4,500 parameters a statement: within SQLite's and PostgreSQL's limits
FILLING = "filling"  # a batch the intake numbers messages into; sealed, it becomes open


def open_batch(conn: Connection, owner: str, stored_at: float) -> int:
    """A new filling batch of `owner` (its root and count are set when it is sealed). A driver
    statement, like add_counts: the intake runs them per group, and SQLAlchemy's statement
    handling cost more than the database's work."""
    mark = driver_mark(conn)
    # Names from this module's constants only; every value goes as a parameter
    sql = (
        f"INSERT INTO {batches.name} (owner, root, count, created_at, first_stored_at, state)"  # noqa: S608
        f" VALUES ({mark}, '', 0, {mark}, {mark}, '{FILLING}') RETURNING id"
    )
    return int(conn.exec_driver_sql(sql, (owner, stored_at, stored_at)).scalar_one())


# The filling batch as the intake holds it: its id and how many messages it holds
Filling = tuple[int, int]


def number_into(
    n: int, filling: Filling | None, batch_max: int, open_new: Callable[[], int]
) -> tuple[list[tuple[int, range]], Filling | None]:
    """Where n messages in arrival order go: (batch id, leaf indexes) runs that continue the
    filling batch and open a new one (`open_new`) whenever it holds batch_max; and the
    filling batch after them."""
    if batch_max < 1:
        raise ValueError(f"a batch holds at least 1 message, not {batch_max}")
    batch, count = filling if filling is not None else (None, batch_max)
    runs: list[tuple[int, range]] = []
    while n > 0:
        if batch is None or count >= batch_max:
            batch, count = open_new(), 0
        take = min(n, batch_max - count)
        runs.append((batch, range(count, count + take)))
        count += take
        n -= take
    return runs, (None if batch is None else (batch, count))


def add_counts(conn: Connection, counts: Mapping[int, int]) -> None:
    """Add each filling batch's newly stored messages to its count (what backlog counts read)."""
    mark = driver_mark(conn)
    sql = f"UPDATE {batches.name} SET count = count + {mark} WHERE id = {mark}"  # noqa: S608
    for batch_id, n in counts.items():
        conn.exec_driver_sql(sql, (n, batch_id))


def renumber(conn: Connection, rows: Sequence[MessageRow]) -> None:
    """Move stored rows to the batch and leaf their MessageRow names."""
    if rows:
        conn.execute(
            update(messages)
            .where(messages.c.device == bindparam("k_device"), messages.c.seq == bindparam("k_seq"))
            .values(batch_id=bindparam("k_batch"), leaf_index=bindparam("k_leaf")),
            [
                {
                    "k_device": r.device,
                    "k_seq": r.seq,
                    "k_batch": r.batch_id,
                    "k_leaf": r.leaf_index,
                }
                for r in rows
            ],
        )


def drop_batches(conn: Connection, ids: Sequence[int]) -> None:
    """Delete batches a store opened and left empty."""
    if ids:
        conn.execute(delete(batches).where(batches.c.id.in_(list(ids))))


class SealError(Exception):
    """A filling batch's leaves are not 0..n-1 (the seal is rolled back)."""


def seal_filling(conn: Connection, owner: str, batch_id: int, max_count: int, at: float) -> bool:
    """Seal a filling batch no store writes any more: its root over its leaves in order, its
    count, state open. Past max_count its last messages move to a new filling batch, sealed
    next (the intake fills batches to the outbox's batch_max, the forwarder's too); an empty
    batch is dropped (False)."""
    rows = conn.execute(
        select(messages.c.id, messages.c.hash, messages.c.stored_at, messages.c.leaf_index)
        .where(messages.c.owner == owner, messages.c.batch_id == batch_id)
        .order_by(messages.c.leaf_index, messages.c.id)
    ).all()
    if not rows:
        drop_batches(conn, [batch_id])
        return False
    if [r.leaf_index for r in rows] != list(range(len(rows))):
        # Leaves numbered twice or with a gap (a store whose commit landed although its
        # client saw an error, then numbered again from a stale position): number them again
        # in (leaf, arrival) order, so the batch seals instead of blocking every later one
        renumber_leaves(conn, [r.id for r in rows])
        rows = conn.execute(
            select(messages.c.id, messages.c.hash, messages.c.stored_at, messages.c.leaf_index)
            .where(messages.c.owner == owner, messages.c.batch_id == batch_id)
            .order_by(messages.c.leaf_index)
        ).all()
        if [r.leaf_index for r in rows] != list(range(len(rows))):
            raise SealError(f"batch {batch_id}'s leaves are not numbered 0..{len(rows) - 1}")
    if len(rows) > max_count:
        rest = rows[max_count:]
        later = open_batch(conn, owner, min(r.stored_at for r in rest))
        conn.execute(
            update(messages)
            .where(messages.c.owner == owner, messages.c.batch_id == batch_id)
            .where(messages.c.leaf_index >= max_count)
            .values(batch_id=later, leaf_index=messages.c.leaf_index - max_count)
        )
        add_counts(conn, {later: len(rest)})
        rows = rows[:max_count]
    conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(
            root=merkle.root([bytes.fromhex(r.hash) for r in rows]).hex(),
            count=len(rows),
            created_at=at,
            first_stored_at=min(r.stored_at for r in rows),
            state="open",
        )
    )
    return True


def renumber_leaves(conn: Connection, ids: Sequence[int]) -> None:
    """Give the messages `ids` (in that order) the leaves 0..n-1."""
    conn.execute(
        update(messages)
        .where(messages.c.id == bindparam("mid"))
        .values(leaf_index=bindparam("leaf")),
        [{"mid": mid, "leaf": leaf} for leaf, mid in enumerate(ids)],
    )


def insert_new(conn: Connection, rows: Sequence[MessageRow]) -> set[tuple[str, int]]:
    """Insert the rows whose (device, seq) is not stored yet; the keys inserted."""
    mark = driver_mark(conn)
    one = "(" + ",".join([mark] * len(MESSAGE_COLUMNS)) + ")"
    # Names from this module's constants only; every value goes as a parameter
    head = f"INSERT INTO {messages.name} ({','.join(MESSAGE_COLUMNS)}) VALUES "  # noqa: S608
    inserted: set[tuple[str, int]] = set()
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        sql = head + ",".join([one] * len(chunk)) + " ON CONFLICT DO NOTHING RETURNING device, seq"
        params = tuple(value for row in chunk for value in row)
        inserted.update((device, int(seq)) for device, seq in conn.exec_driver_sql(sql, params))
    return inserted


def hashes_of(conn: Connection, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    keys = list(keys)
    found: dict[tuple[str, int], str] = {}
    for start in range(0, len(keys), 400):
        chunk = keys[start : start + 400]
        rows = conn.execute(
            select(messages.c.device, messages.c.seq, messages.c.hash).where(
                tuple_(messages.c.device, messages.c.seq).in_(chunk)
            )
        ).all()
        found.update({(r.device, int(r.seq)): r.hash for r in rows})
    return found


DEVICES_PER_UPSERT = 500  # 2,000 parameters a statement


def count_sequences(conn: Connection, keys: list[tuple[str, int]]) -> None:
    """Fold newly stored seqs into each device's lowest, highest and count: one driver
    statement per DEVICES_PER_UPSERT devices (SQLAlchemy's executemany of the upsert cost
    more CPU than the insert of the messages), devices in name order so two gateways sharing
    a PostgreSQL outbox lock their rows in one order and cannot deadlock."""
    per_device: dict[str, list[int]] = {}
    for device, seq in keys:
        per_device.setdefault(device, []).append(seq)
    mark = driver_mark(conn)
    table = devices.name
    # Names from this module's constants only; every value goes as a parameter
    head = f"INSERT INTO {table} (device, min_seq, max_seq, count) VALUES "  # noqa: S608
    tail = (
        " ON CONFLICT (device) DO UPDATE SET"
        f" min_seq = CASE WHEN {table}.min_seq > excluded.min_seq"
        f" THEN excluded.min_seq ELSE {table}.min_seq END,"
        f" max_seq = CASE WHEN {table}.max_seq < excluded.max_seq"
        f" THEN excluded.max_seq ELSE {table}.max_seq END,"
        f" count = {table}.count + excluded.count"
    )
    one = f"({mark},{mark},{mark},{mark})"
    names = sorted(per_device)
    for start in range(0, len(names), DEVICES_PER_UPSERT):
        chunk = names[start : start + DEVICES_PER_UPSERT]
        params: list[Any] = []
        for device in chunk:
            seqs = per_device[device]
            params += (device, min(seqs), max(seqs), len(seqs))
        conn.exec_driver_sql(head + ",".join([one] * len(chunk)) + tail, tuple(params))
