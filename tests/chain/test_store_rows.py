"""A block's rows reach the database whole, however many statements carry them: the store puts
as many rows in a statement as the connection's parameter limit allows (params_per_statement),
so the sizes around each table's boundary are checked on every database the suite reaches
(SQLite, and PostgreSQL where SMARTCITY_DATABASE_URL names one). SQLite is held to the lowest
limit a SQLite the store supports compiles in (999), not this machine's build's higher one:
that also checks that the store reads the connection's own limit."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from chain import store_sql
from chain.db import make_engine
from chain.store import BlockStore, TxRow
from chain.store_sql import PARAMS_PER_STATEMENT, params_per_statement

LOWEST_SQLITE_LIMIT = 999  # SQLite 3.24-3.31's compiled-in limit

# A block's transaction count at each boundary, from the parameters a statement carries: five
# a transaction row, four a state row (two state rows a transaction), one a pending key
SIZES: dict[str, Callable[[int], int]] = {
    "one transaction": lambda params: 1,
    "a full statement of transaction rows": lambda params: params // 5,
    "one transaction row over": lambda params: params // 5 + 1,
    "one state row over": lambda params: params // 4 // 2 + 1,
    "a statement of state rows and more": lambda params: params // 4 + 1,
    "one pending key over": lambda params: params + 1,
}


def _store(db_url: str, monkeypatch: pytest.MonkeyPatch | None = None) -> BlockStore:
    """A store whose statements carry at most 999 parameters when `monkeypatch` is given (a
    SQLite connection's own limit; PostgreSQL's, which a server does not lower, by the
    store's constant), else as many as they do on the node."""
    engine = make_engine(db_url)
    if monkeypatch is None:
        return BlockStore(engine)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def lowest_limit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, LOWEST_SQLITE_LIMIT)

        engine.dispose()  # connections made before the listener are not reused
    else:
        monkeypatch.setattr(store_sql, "PARAMS_PER_STATEMENT", LOWEST_SQLITE_LIMIT)
    return BlockStore(engine)


def test_a_statement_carries_the_connections_own_limit(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _store(db_url).engine.connect() as conn:
        assert params_per_statement(conn) == PARAMS_PER_STATEMENT  # every database here allows it
    with _store(db_url, monkeypatch).engine.connect() as conn:
        assert params_per_statement(conn) == LOWEST_SQLITE_LIMIT  # an older SQLite's, kept to


def _tx_row(height: int, i: int) -> TxRow:
    digest = f"{height:08x}{i:056x}"
    body = json.dumps({"n": i, "text": 'it\'s "quoted" — ünïcode'})
    return TxRow(digest, i, 9_000 + i, body, json.dumps({"tx": digest, "index": i}))


def _commit(store: BlockStore, height: int, rows: list[TxRow], changes: dict) -> None:
    store.commit_block(
        height=height,
        block_hash=f"{height:064x}",
        header={"height": height},
        certificate={"height": height},
        tx_rows=rows,
        changes=changes,
    )


@pytest.mark.parametrize("size", SIZES)
def test_a_blocks_rows_are_all_stored_across_statement_boundaries(
    db_url: str, size: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _check_a_block_of(_store(db_url, monkeypatch), size)


def test_a_block_past_the_full_statements_is_stored(db_url: str) -> None:
    """The statements a node sends: a block one transaction over a full statement of
    transaction rows, its state rows in two statements (about 32,766 parameters each)."""
    _check_a_block_of(_store(db_url), "one transaction row over")


def _check_a_block_of(store: BlockStore, size: str) -> None:
    with store.engine.connect() as conn:
        count = SIZES[size](params_per_statement(conn))
    first = [_tx_row(1, i) for i in range(count)]
    store.add_pending((r.hash, r.idx, r.body) for r in first)
    assert len(store.pending()) == count
    # Two keys a transaction, as an anchor writes: one set in this block and changed in the
    # next, one deleted in the next
    _commit(
        store,
        1,
        first,
        {
            **{("ns", f"keep:{i}"): (f'"v{i}"', f"{i:064x}") for i in range(count)},
            **{("ns", f"gone:{i}"): (f'"g{i}"', f"{i:064x}") for i in range(count)},
        },
    )
    assert store.pending() == []  # each committed transaction left the pending rows
    assert store.block_tx_hashes(1) == [r.hash for r in first]
    found = store.tx(first[-1].hash)
    assert found is not None and found[1] == json.loads(first[-1].body)

    second = [_tx_row(2, i) for i in range(count)]
    _commit(
        store,
        2,
        second,
        {
            **{("ns", f"keep:{i}"): (f'"w{i}"', f"{i + 1:064x}") for i in range(count)},
            **{("ns", f"gone:{i}"): None for i in range(count)},
        },
    )
    state = {(r.namespace, r.key): (r.value, r.value_hash) for r in store.state()}
    assert state == {("ns", f"keep:{i}"): (f"w{i}", f"{i + 1:064x}") for i in range(count)}
    assert store.live_tx_hashes(0) == {r.hash: r.expiry_height for r in first + second}
