"""A block's rows reach the database whole, however many statements carry them: the store puts
as many rows in a statement as PARAMS_PER_STATEMENT parameters allow, so the sizes around each
table's boundary are checked on every database the suite reaches (SQLite, and PostgreSQL where
SMARTCITY_DATABASE_URL names one). SQLite is held to the lowest parameter limit a SQLite the
store supports compiles in (999), not this machine's build's higher one."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from sqlalchemy import event

from chain.db import make_engine
from chain.store import PARAMS_PER_STATEMENT, BlockStore, TxRow

TX_ROWS = PARAMS_PER_STATEMENT // 5  # a transaction row's parameters
STATE_ROWS = PARAMS_PER_STATEMENT // 4


def _store(db_url: str) -> BlockStore:
    engine = make_engine(db_url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def lowest_limit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, PARAMS_PER_STATEMENT)

        engine.dispose()  # connections made before the listener are not reused
    return BlockStore(engine)


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


@pytest.mark.parametrize(
    "count",
    [1, TX_ROWS, TX_ROWS + 1, STATE_ROWS // 2 + 1, STATE_ROWS + 1, PARAMS_PER_STATEMENT + 1],
)
def test_a_blocks_rows_are_all_stored_across_statement_boundaries(db_url: str, count: int) -> None:
    store = _store(db_url)
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
