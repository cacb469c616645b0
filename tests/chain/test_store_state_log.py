"""The block store's state: keys a block creates are appended to the state log, keys it changes
are upserted, keys it deletes are listed as gone; whatever the mix, through restarts and failed
writes, a node that starts again reads back exactly the state its blocks left
(chain.store_state.stored_state, which backups read too: tests/ops/test_backup.py)."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, func, select, text

from chain.db import make_engine
from chain.errors import StorageError
from chain.store import BlockStore
from chain.store_state import StateWriter, state_gone, state_log, state_rows, stored_state
from smartcity.backup_rows import dump_state
from tests.conftest import _backends, fresh_database_url

Key = tuple[str, str]
KEYS = st.tuples(st.sampled_from(["anchors", "governance"]), st.sampled_from(list("abcde")))
# A block's writes (a key to a new value, or None to delete it), and whether a first attempt
# at writing it fails after its state rows are written
BLOCKS = st.lists(
    st.tuples(
        st.dictionaries(KEYS, st.none() | st.integers(0, 9), min_size=0, max_size=6),
        st.booleans(),
    ),
    min_size=1,
    max_size=10,
)


def _stored(value: int) -> tuple[str, str]:
    text = f'{{"v":{value}}}'
    return text, hashlib.sha256(text.encode()).hexdigest()


class FailingOnce(StateWriter):
    """A state writer whose next write fails once its rows are written, as a database that
    goes away mid-transaction does: the block's transaction rolls back."""

    fail = False

    def write(self, conn: Connection, changes: Any, **kw: Any) -> Any:
        written = super().write(conn, changes, **kw)
        if self.fail:
            self.fail = False
            raise StorageError("the database went away")
        return written


def _store(engine: Engine) -> tuple[BlockStore, FailingOnce]:
    """A store as a node starting again makes one: it reads what it keeps anew."""
    store = BlockStore(engine)
    writer = FailingOnce()
    store._state = writer
    return store, writer


def _commit(
    store: BlockStore, height: int, writes: dict[Key, int | None], state: dict[Key, Any]
) -> None:
    """Commit a block of `writes` as a ledger does (created: the keys `state` lacks), and
    apply them to `state`, the model."""
    changes = {k: None if v is None else _stored(v) for k, v in writes.items()}
    store.commit_block(
        height=height,
        block_hash=f"{height:064x}",
        header={},
        certificate={},
        tx_rows=[],
        changes=changes,
        created=frozenset(k for k in writes if k not in state),
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


@contextmanager
def _database(backend: str) -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as folder:
        url, drop = fresh_database_url(backend, Path(folder))
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()
            drop()


@pytest.mark.parametrize("backend", _backends())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=BLOCKS, restart_at=st.integers(0, 10))
def test_any_mix_of_creates_changes_and_deletes_reads_back_as_written(
    backend: str, blocks: list[tuple[dict[Key, int | None], bool]], restart_at: int
) -> None:
    with _database(backend) as engine:
        genesis = {("governance", "a"): _stored(7), ("anchors", "e"): _stored(8)}
        store, writer = _store(engine)
        store.init_genesis("00" * 32, "test", dict(genesis))
        state: dict[Key, Any] = dict(genesis)
        for height, (writes, fails_first) in enumerate(blocks, 1):
            if height == restart_at:
                store, writer = _store(engine)
            if fails_first:
                writer.fail = True
                with pytest.raises(StorageError, match="went away"):
                    _commit(store, height, writes, dict(state))
            _commit(store, height, writes, state)
            assert _read_back(engine) == state
        # what a ledger starts from
        assert {(r.namespace, r.key): r.value_hash for r in BlockStore(engine).state()} == {
            k: v[1] for k, v in state.items()
        }
        # the log holds at most one row a key, however often it was deleted and made again
        with engine.connect() as conn:
            logged = conn.execute(select(state_log.c.namespace, state_log.c.key)).all()
        assert len(logged) == len(set(logged))


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
        _commit(store, 4, {k: 4}, state)  # created again: keyed, its log row stays hidden
        assert (_count(engine, state_gone), _count(engine, state_log)) == (0, 2)
        assert _read_back(engine) == state and state[k] == _stored(4)
        _commit(store, 5, {k: None, other: None}, state)
        _commit(store, 6, {("anchors", "new"): 6}, state)
        assert _read_back(engine) == {("anchors", "new"): _stored(6)}
    finally:
        engine.dispose()


def test_a_database_no_node_of_this_version_opened_is_read_and_backed_up(db_url: str) -> None:
    # A node of the version before the log kept every key in chain_state; a backup taken with
    # this version's CLI before the node is upgraded (docs/operations.md) reads it there
    engine = make_engine(db_url)
    try:
        old = {("anchors", "old"): _stored(1), ("governance", "kept"): _stored(2)}
        BlockStore(engine).init_genesis("00" * 32, "test", dict(old))
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE chain_state_log"))
            conn.execute(text("DROP TABLE chain_state_gone"))
        assert _read_back(engine) == old
        with engine.connect() as conn:
            handle = io.BytesIO()
            count, _ = dump_state(conn, handle)
        assert count == 2
        assert {(r["namespace"], r["key"]) for r in map(json.loads, handle.getvalue().split())} == (
            set(old)
        )
        # and once a node of this version opens it, its keys stay where they are
        store = BlockStore(engine)
        state: dict[Key, Any] = dict(old)
        _commit(store, 1, {("governance", "kept"): None, ("anchors", "old"): 3}, state)
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
