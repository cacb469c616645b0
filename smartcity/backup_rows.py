"""A node backup's table entries: each table's rows as JSON lines, with their count and SHA-256
(smartcity.backup writes them into the backup file)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from chain.errors import ChainError
from chain.journal import Journal
from chain.store import pending
from chain.store_state import stored_state
from chain.tx import tx_from_canonical


def dump_table(conn: Connection, table: Table, handle: IO[bytes]) -> tuple[int, str]:
    order = list(table.primary_key.columns)
    rows = (dict(row) for row in conn.execute(select(table).order_by(*order)).mappings())
    return _dump_rows(rows, handle)


def dump_state(conn: Connection, handle: IO[bytes]) -> tuple[int, str]:
    """The state as `chain_state`'s rows: every key's current value, joined from the store's
    state tables (chain.store_state.stored_state), so a backup's format does not depend on where
    the node keeps each key, and a restored node holds them all in `chain_state`."""
    columns = ("namespace", "key", "value", "value_hash")
    return _dump_rows((dict(zip(columns, row, strict=True)) for row in stored_state(conn)), handle)


def _dump_rows(rows: Iterable[dict[str, Any]], handle: IO[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for row in rows:
        line = json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        handle.write(line)
        digest.update(line)
        count += 1
    return count, digest.hexdigest()


def read_journal(folder: Path) -> list[tuple[str, str]]:
    """The (hash, body) of every transaction a node's journal keeps, oldest first."""
    out: list[tuple[str, str]] = []
    for body in Journal(folder).read() if folder.is_dir() else []:
        try:
            out.append((tx_from_canonical(body.encode()).hash, body))
        except (ChainError, ValueError):
            continue  # unreadable: a restart skips it too
    return out


def dump_pending(
    conn: Connection, journaled: list[tuple[str, str]], handle: IO[bytes]
) -> tuple[int, str]:
    """The persisted mempool as pending rows: the store's (a node from before the journal) and
    the journal's (read before the snapshot) after them, in the order they were kept. A
    restored node moves the rows into its own journal when it starts, and drops those its
    blocks hold."""
    rows = [dict(r) for r in conn.execute(select(pending).order_by(pending.c.seq)).mappings()]
    seen = {row["hash"] for row in rows}
    seq = max((int(row["seq"]) for row in rows), default=0)
    for tx_hash, body in journaled:
        if tx_hash not in seen:
            seen.add(tx_hash)
            seq += 1
            rows.append({"hash": tx_hash, "seq": seq, "body": body})
    return _dump_rows(sorted(rows, key=lambda row: str(row["hash"])), handle)
