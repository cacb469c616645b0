"""The block store's state: keys a block creates are appended to the state log, keys it changes
are upserted, keys it deletes are listed as gone; whatever the mix, a node that starts again
reads back exactly the state its blocks left (chain.store_state.stored_state, which backups
read too: tests/ops/test_backup.py)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from chain.db import make_engine, sqlite_url
from chain.store import BlockStore
from chain.store_state import state_gone, state_log, state_rows, stored_state

Key = tuple[str, str]
KEYS = st.tuples(st.sampled_from(["anchors", "identity"]), st.sampled_from(list("abcdef")))
# A block's writes: a key to a new value, or None to delete it
BLOCKS = st.lists(
    st.dictionaries(KEYS, st.none() | st.integers(0, 9), min_size=0, max_size=6),
    min_size=1,
    max_size=10,
)


def _stored(value: int) -> tuple[str, str]:
    text = f'{{"v":{value}}}'
    return text, hashlib.sha256(text.encode()).hexdigest()


def _commit(
    store: BlockStore, height: int, writes: dict[Key, int | None], state: dict[Key, Any]
) -> None:
    """Commit a block of `writes` as a ledger does (created: the keys `state` lacks), and
    apply them to `state`, the model."""
    changes = {k: None if v is None else _stored(v) for k, v in writes.items()}
    created = frozenset(k for k in writes if k not in state)
    store.commit_block(
        height=height,
        block_hash=f"{height:064x}",
        header={},
        certificate={},
        tx_rows=[],
        changes=changes,
        created=created,
    )
    for k, v in writes.items():
        if v is None:
            state.pop(k, None)
        else:
            state[k] = _stored(v)


def _read_back(engine: Engine) -> dict[Key, tuple[str, str]]:
    with engine.connect() as conn:
        rows = list(stored_state(conn))
    found = {(ns, key): (value, digest) for ns, key, value, digest in rows}
    assert len(found) == len(rows), "a key read back twice"
    return found


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@settings(max_examples=60, deadline=None)
@given(blocks=BLOCKS, restart_at=st.integers(0, 10))
def test_any_mix_of_creates_changes_and_deletes_reads_back_as_written(
    blocks: list[dict[Key, int | None]], restart_at: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(sqlite_url(Path(folder) / "chain.db"))
        try:
            genesis = {("identity", "a"): _stored(7), ("anchors", "f"): _stored(8)}
            store = BlockStore(engine)
            store.init_genesis("00" * 32, "test", dict(genesis))
            state: dict[Key, Any] = dict(genesis)
            for height, writes in enumerate(blocks, 1):
                if height == restart_at:  # a node started again: what it keeps is read anew
                    store = BlockStore(engine)
                _commit(store, height, writes, state)
                assert _read_back(engine) == state
            # and the state a ledger starts from
            assert {(r.namespace, r.key): r.value_hash for r in BlockStore(engine).state()} == {
                k: v[1] for k, v in state.items()
            }
        finally:
            engine.dispose()


def test_a_key_created_changed_deleted_and_created_again_through_restarts(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        store = BlockStore(engine)
        state: dict[Key, Any] = {}
        k, other = ("anchors", "batch:1"), ("anchors", "batch:2")
        _commit(store, 1, {k: 1, other: 1}, state)
        # created keys are appended, not upserted into the keyed table
        assert (_count(engine, state_log), _count(engine, state_rows)) == (2, 0)
        _commit(store, 2, {k: 2}, state)
        assert _count(engine, state_rows) == 1 and _read_back(engine) == state
        store = BlockStore(engine)
        _commit(store, 3, {k: None}, state)
        assert _count(engine, state_gone) == 1 and _read_back(engine) == {other: _stored(1)}
        store = BlockStore(engine)
        _commit(store, 4, {k: 4}, state)  # created again: appended after the first
        assert _count(engine, state_gone) == 0 and _read_back(engine) == state
        assert state[k] == _stored(4)
        _commit(store, 5, {k: None, other: None}, state)
        _commit(store, 6, {("anchors", "new"): 6}, state)
        assert _read_back(engine) == {("anchors", "new"): _stored(6)}
    finally:
        engine.dispose()


def test_a_database_made_before_the_state_log_keeps_its_keys_and_adds_new_ones(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    try:
        store = BlockStore(engine)
        old = {("anchors", "old"): _stored(1), ("identity", "gone"): _stored(2)}
        store.init_genesis("00" * 32, "test", dict(old))  # written as every key was before
        state: dict[Key, Any] = dict(old)
        _commit(store, 1, {("identity", "gone"): None, ("anchors", "old"): 3}, state)
        _commit(store, 2, {("anchors", "new"): 4}, state)
        assert (
            _read_back(engine)
            == state
            == {
                ("anchors", "old"): _stored(3),
                ("anchors", "new"): _stored(4),
            }
        )
    finally:
        engine.dispose()
