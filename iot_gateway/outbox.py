"""The durable outbox: accepted messages, their batches and each device's sequence bookkeeping.

A message is in the outbox before the broker hears its acknowledgement. (device, seq) is unique,
so a redelivered message is stored once however often it arrives and however many gateway
processes share the database. SQLite files run in WAL mode with full fsync and take the write
lock when a transaction begins (several processes can share one file); PostgreSQL works as is.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from chain import merkle
from chain.encoding import sha256
from iot_gateway.errors import GatewayError
from iot_gateway.outbox_sql import (
    FILLING,
    Filling,
    MessageRow,
    SealError,
    add_counts,
    batches,
    count_sequences,
    devices,
    drop_batches,
    hashes_of,
    insert_new,
    messages,
    metadata,
    number_into,
    open_batch,
    renumber,
    seal_filling,
)
from iot_gateway.wire import canonical_json

__all__ = ["Batch", "BatchMessage", "Incoming", "Outbox", "OutboxError", "StoreResult"]
__all__ += ["batches", "devices", "make_outbox_engine", "messages", "metadata"]


class OutboxError(GatewayError):
    """The outbox database failed (SQLAlchemy errors end here)."""


class Incoming(NamedTuple):
    """A checked message on its way into the outbox, with its canonical bytes and their hash (a
    tuple: the check stage makes one per message, three times faster than a dataclass)."""

    topic: str
    device: str
    seq: int
    body: bytes  # RFC 8785 canonical JSON of the whole payload
    hash: str  # hex SHA-256 of body

    def payload_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @classmethod
    def of(cls, topic: str, payload: dict[str, Any]) -> Incoming:
        """An Incoming for a payload whose canonical bytes were not computed yet."""
        body = canonical_json(payload)
        return cls(topic, payload["device"], payload["seq"], body, sha256(body).hex())


@dataclass
class StoreResult:
    """What became of each incoming message, by position."""

    outcome: list[str] = field(default_factory=list)  # stored | duplicate | replayed_seq


class BatchMessage(NamedTuple):
    """A stored message as a batch forwards it (a tuple: a batch reads a thousand of them)."""

    topic: str
    payload_json: str  # canonical JSON, forwarded as stored (no parsing, no re-encoding)
    hash: str
    leaf_index: int

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload_json)
        return value


@dataclass(frozen=True)
class Batch:
    id: int
    root: str
    count: int
    first_stored_at: float
    anchor_tx: str | None
    messages: tuple[BatchMessage, ...]


def make_outbox_engine(url: str) -> Engine:
    """An engine whose SQLite transactions are durable on fsync and begin with the write lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 60, "isolation_level": None}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Take the write lock up front: a deferred transaction that later writes fails at once
        # with "database is locked" when another process writes, instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Outbox:
    """Durable store of accepted messages and batches for one gateway instance (`owner`)."""

    def __init__(self, url: str, *, owner: str, batch_max: int = 1000) -> None:
        self.engine = make_outbox_engine(url)
        self.owner = owner
        self.batch_max = batch_max  # messages numbered into one batch before the next opens
        # The filling batch the intake numbers messages into, and how many it holds; guarded
        # by the lock, which a store holds for its whole transaction and a seal while it takes
        # the batch away, so no store is writing a batch that is being sealed
        self._filling: Filling | None = None
        self._filling_lock = threading.Lock()
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise OutboxError(f"cannot open the outbox at {url}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def store(self, incoming: Sequence[Incoming], *, now_s: float | None = None) -> StoreResult:
        """Store new messages in one transaction, numbered into the filling batch."""
        stored_at = time.time() if now_s is None else now_s
        with self._filling_lock:
            try:
                with self.engine.begin() as conn:
                    result, filling = self._store(conn, incoming, stored_at)
            except SQLAlchemyError as exc:
                self._filling = None  # its commit may have landed: the next opens a new batch
                raise OutboxError(f"outbox write failed: {exc}") from exc
            self._filling = filling  # committed: the next store continues from here
        return result

    def _store(
        self, conn: Connection, incoming: Sequence[Incoming], stored_at: float
    ) -> tuple[StoreResult, Filling | None]:
        # Insert first: nearly every message is new, so the keys already stored (a
        # redelivery, a replayed seq, another gateway's) are read back only when the insert
        # skipped some, instead of looking every key up before
        fresh: dict[tuple[str, int], Incoming] = {}
        for item in incoming:
            fresh.setdefault((item.device, item.seq), item)
        if not fresh:
            return StoreResult(), self._filling
        opened: list[int] = []

        def open_new() -> int:
            opened.append(open_batch(conn, self.owner, stored_at))
            return opened[-1]

        items = list(fresh.values())
        runs, filling = number_into(len(items), self._filling, self.batch_max, open_new)
        owner = self.owner
        rows: list[MessageRow] = []
        for b, leaves in runs:
            first = len(rows)
            rows += [
                MessageRow(
                    i.device, i.seq, i.topic, i.body.decode(), i.hash, owner, stored_at, b, n
                )
                for i, n in zip(items[first : first + len(leaves)], leaves, strict=True)
            ]
        inserted = insert_new(conn, rows)
        known = {key: fresh[key].hash for key in inserted}
        if len(inserted) < len(fresh):
            known.update(hashes_of(conn, [k for k in fresh if k not in inserted]))
            runs, filling = self._renumber(conn, rows, inserted, opened)
        add_counts(conn, {b: len(leaves) for b, leaves in runs})
        result = StoreResult()
        new_keys: list[tuple[str, int]] = []
        for item in incoming:
            key = (item.device, item.seq)
            if known.get(key) != item.hash:
                result.outcome.append("replayed_seq")
            elif key in inserted and fresh[key] is item:
                result.outcome.append("stored")
                new_keys.append(key)
            else:
                result.outcome.append("duplicate")
        count_sequences(conn, new_keys)
        return result, filling

    def _renumber(
        self,
        conn: Connection,
        rows: list[MessageRow],
        inserted: set[tuple[str, int]],
        opened: list[int],
    ) -> tuple[list[tuple[int, range]], Filling | None]:
        """The inserted rows numbered again without the gaps the skipped ones left (so each
        batch's leaves stay 0..n-1), reusing the batches this store opened, in order, and
        dropping those left empty. Only a group holding keys already stored comes here."""
        kept = [row for row in rows if (row.device, row.seq) in inserted]
        spare = iter(opened)
        runs, filling = number_into(len(kept), self._filling, self.batch_max, spare.__next__)
        places = [(b, leaf) for b, leaves in runs for leaf in leaves]
        moved = [
            row._replace(batch_id=b, leaf_index=leaf)
            for row, (b, leaf) in zip(kept, places, strict=True)
        ]
        renumber(conn, [new for new, old in zip(moved, kept, strict=True) if new != old])
        drop_batches(conn, list(spare))
        return runs, filling

    def next_open_batch(self, state: str = "open", *, with_messages: bool = True) -> Batch | None:
        """The oldest batch of this owner in `state` (open: to anchor, anchored: to forward);
        anchoring needs only the root, so it may leave the messages out."""
        with self.engine.begin() as conn:
            batch = conn.execute(
                select(batches)
                .where(batches.c.owner == self.owner, batches.c.state == state)
                .order_by(batches.c.id)
                .limit(1)
            ).first()
            if batch is None:
                return None
            rows = (
                conn.execute(
                    select(
                        messages.c.topic, messages.c.payload, messages.c.hash, messages.c.leaf_index
                    )
                    # The owner too: the pending index (owner, batch_id, id) then finds the
                    # batch's rows, where batch_id alone scanned the whole table per batch
                    .where(messages.c.owner == self.owner, messages.c.batch_id == batch.id)
                    .order_by(messages.c.leaf_index)
                ).all()
                if with_messages
                else []
            )
        return Batch(
            id=batch.id,
            root=batch.root,
            count=int(batch._mapping["count"]),
            first_stored_at=batch.first_stored_at,
            anchor_tx=batch.anchor_tx,
            messages=tuple(BatchMessage._make(row) for row in rows),
        )

    def pending_count(self) -> int:
        """Messages of this owner stored but not yet in a sealed batch."""
        with self.engine.connect() as conn:
            legacy = conn.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.owner == self.owner, messages.c.batch_id.is_(None))
            ).scalar_one()
            return int(legacy) + self._filling_count(conn)

    def pending_at_least(self, n: int) -> bool:
        """Whether this owner has at least n messages not yet in a sealed batch (reads at most
        n index entries, where counting them all would read the whole backlog)."""
        with self.engine.connect() as conn:
            n -= self._filling_count(conn)
            if n <= 0:
                return True
            found = conn.execute(self._unnumbered_in_order(messages.c.id).offset(n - 1))
            return found.first() is not None

    def oldest_pending_at(self) -> float | None:
        """When the oldest message not yet in a sealed batch was stored: the first to arrive,
        found through the pending index and the batches' (the forwarder asks this in every
        idle pass)."""
        with self.engine.connect() as conn:
            legacy = conn.execute(self._unnumbered_in_order(messages.c.stored_at)).scalar()
            filling = conn.execute(
                select(func.min(batches.c.first_stored_at)).where(
                    batches.c.owner == self.owner, batches.c.state == FILLING, batches.c.count > 0
                )
            ).scalar()
        found = [float(v) for v in (legacy, filling) if v is not None]
        return min(found) if found else None

    def _filling_count(self, conn: Connection) -> int:
        value = conn.execute(
            select(func.coalesce(func.sum(batches.c.count), 0)).where(
                batches.c.owner == self.owner, batches.c.state == FILLING
            )
        ).scalar_one()
        return int(value)

    def _unnumbered_in_order(self, column: Any) -> Any:
        """The first of this owner's messages in no batch, in arrival order: rows an outbox
        written before messages were numbered when stored may still hold (the pending index)."""
        return (
            select(column)
            .where(messages.c.owner == self.owner, messages.c.batch_id.is_(None))
            .order_by(messages.c.id)
            .limit(1)
        )

    def seal_batch(self, *, max_count: int, now_s: float | None = None) -> Batch | None:
        """Seal this owner's oldest pending messages, up to max_count, into a batch to anchor:
        its oldest filling batch, which the intake then no longer writes (or messages an
        older outbox left in no batch, first)."""
        created = time.time() if now_s is None else now_s
        with self.engine.connect() as conn:
            unnumbered = conn.execute(self._unnumbered_in_order(messages.c.id)).first()
        if unnumbered is not None:
            return self._seal_unnumbered(max_count=max_count, created=created)
        while True:
            with self._filling_lock:
                with self.engine.connect() as conn:
                    oldest = conn.execute(
                        select(batches.c.id)
                        .where(batches.c.owner == self.owner, batches.c.state == FILLING)
                        .order_by(batches.c.id)
                        .limit(1)
                    ).scalar()
                if oldest is None:
                    return None
                if self._filling is not None and self._filling[0] == oldest:
                    self._filling = None  # the intake's next store opens a new batch
            try:
                with self.engine.begin() as conn:
                    sealed = seal_filling(conn, self.owner, int(oldest), max_count, created)
            except (SQLAlchemyError, SealError) as exc:  # it stays filling: sealed next pass
                raise OutboxError(f"sealing failed: {exc}") from exc
            if sealed:
                return self.next_open_batch(with_messages=False)
            # an empty batch (all its messages were stored before) was dropped: the next one

    def _seal_unnumbered(self, *, max_count: int, created: float) -> Batch | None:
        """Gather up to max_count messages in no batch, in arrival order, into a new batch (an
        outbox written before messages were numbered when stored, upgraded in place)."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(messages.c.id, messages.c.hash, messages.c.stored_at)
                .where(messages.c.owner == self.owner, messages.c.batch_id.is_(None))
                .order_by(messages.c.id)
                .limit(max_count)
            ).all()
            if not rows:
                return None
            root = merkle.root([bytes.fromhex(r.hash) for r in rows]).hex()
            batch_id = conn.execute(
                batches.insert().values(
                    owner=self.owner,
                    root=root,
                    count=len(rows),
                    created_at=created,
                    first_stored_at=min(r.stored_at for r in rows),
                    state="open",
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            # One statement numbers the leaves in arrival order. The rows read are this
            # owner's unbatched ones up to the last id read: no process stores such rows any
            # more, so they are a prefix in id order (checked by the count)
            leaves = (
                select(
                    messages.c.id,
                    (func.row_number().over(order_by=messages.c.id) - 1).label("leaf"),
                )
                .where(
                    messages.c.owner == self.owner,
                    messages.c.batch_id.is_(None),
                    messages.c.id <= rows[-1].id,
                )
                .subquery()
            )
            numbered = conn.execute(
                update(messages)
                .where(messages.c.id == leaves.c.id)
                .values(batch_id=batch_id, leaf_index=leaves.c.leaf)
            ).rowcount
            if numbered != len(rows):  # rolled back: the batch's root would not be its leaves'
                raise OutboxError(f"sealing found {numbered} messages where it read {len(rows)}")
        return self.next_open_batch(with_messages=False)

    def mark_anchored(self, batch_id: int, anchor_tx: str, *, now_s: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(
                    anchor_tx=anchor_tx,
                    anchored_at=time.time() if now_s is None else now_s,
                    state="anchored",
                )
            )

    def mark_forwarded(self, batch_id: int, *, now_s: float | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(forwarded_at=time.time() if now_s is None else now_s, state="forwarded")
            )

    def mark_refused(self, batch_id: int, error: str) -> None:
        """Road-health refused the batch for good: keep it, out of the way, with the reason."""
        with self.engine.begin() as conn:
            conn.execute(
                update(batches)
                .where(batches.c.id == batch_id)
                .values(state="refused", error=error[:2000])
            )

    def unforwarded_count(self) -> int:
        """Messages of this owner stored and not yet forwarded (or refused): a filling batch's
        count is kept with each store."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.owner == self.owner, messages.c.batch_id.is_(None))
            ).scalar_one()
            open_count = conn.execute(
                select(func.coalesce(func.sum(batches.c.count), 0)).where(
                    batches.c.owner == self.owner,
                    batches.c.state.in_((FILLING, "open", "anchored")),
                )
            ).scalar_one()
        return int(pending) + int(open_count)

    def oldest_unanchored_at(self) -> float | None:
        """When the oldest message of this owner that is not yet anchored was stored."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                select(func.min(messages.c.stored_at)).where(
                    messages.c.owner == self.owner, messages.c.batch_id.is_(None)
                )
            ).scalar_one()
            sealed = conn.execute(
                select(func.min(batches.c.first_stored_at)).where(
                    batches.c.owner == self.owner,
                    batches.c.state.in_((FILLING, "open")),
                    batches.c.count > 0,
                )
            ).scalar_one()
        found = [float(v) for v in (pending, sealed) if v is not None]
        return min(found) if found else None

    def sequence_gaps(self) -> int:
        """Sequence numbers missing between each device's lowest and highest stored seq."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(
                    func.coalesce(
                        func.sum(devices.c.max_seq - devices.c.min_seq + 1 - devices.c.count), 0
                    )
                )
            ).scalar_one()
        return int(value)

    def last_seqs(self) -> dict[str, int]:
        """Each device's highest stored seq (a restarted simulator continues after it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices.c.device, devices.c.max_seq)).all()
        return {str(r.device): int(r.max_seq) for r in rows}

    def stored_messages(self) -> list[tuple[str, int, str]]:
        """(device, seq, hash) of every stored message, in arrival order (tests and audits)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(messages.c.device, messages.c.seq, messages.c.hash).order_by(messages.c.id)
            ).all()
        return [(r.device, int(r.seq), r.hash) for r in rows]

    def batch_states(self) -> dict[str, int]:
        """Sealed batches by state (a filling batch holds messages still pending)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(batches.c.state, func.count())
                .where(batches.c.state != FILLING)
                .group_by(batches.c.state)
            ).all()
        return {str(state): int(n) for state, n in rows}
