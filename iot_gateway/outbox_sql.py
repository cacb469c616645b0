"""The outbox's tables and the statements the intake runs on every stored group.

The insert is written as one driver statement per ROWS_PER_INSERT rows: built by SQLAlchemy
(insertmanyvalues), its parameters cost more CPU than SQLite spent inserting them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    select,
    tuple_,
)
from sqlalchemy.engine import Connection

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
    Column("state", String(16), nullable=False),  # open, anchored, forwarded, refused
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


MESSAGE_COLUMNS = MessageRow._fields
ROWS_PER_INSERT = 500  # 3,500 parameters a statement: within SQLite's and PostgreSQL's limits


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
