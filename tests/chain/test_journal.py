"""The mempool's journal (chain.journal): what a node acknowledged survives a crash, a segment
goes once nothing in it is pending, and a torn or damaged end loses only what follows it."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import journal as journal_module
from chain.errors import StorageError
from chain.journal import RECORD, Journal
from chain.ledger import Ledger
from chain.node import Node, NodeOptions
from chain.tx import Tx

# One operation on the journal: write n new transactions, release the live ones a mask picks,
# or restart (a crash, then what a node's restore does: keep exactly what is still pending)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 6)),
        st.tuples(st.just("release"), st.integers(0, 2**12 - 1)),
        st.tuples(st.just("rewrite"), st.integers(0, 2**12 - 1)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(OPERATIONS)
def test_whatever_was_written_and_not_released_is_read_back_and_nothing_else_is_kept(
    operations: list[tuple[str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal_module, "SEGMENT_BYTES", 60)  # a new segment every write or two
        journal = Journal(Path(folder))
        written: dict[str, str] = {}  # everything ever written: hash -> body
        live: dict[str, str] = {}  # written and not released, in write order
        for op, n in operations:
            if op == "write":
                batch = [(f"h{len(written) + i}", f'{{"n":{len(written) + i}}}') for i in range(n)]
                journal.write(batch)
                written.update(batch)
                live.update(batch)
            elif op == "rewrite":  # a client's copy written again (a gossiped one, say)
                again = [(h, live[h]) for i, h in enumerate(live) if n >> (i % 12) & 1]
                journal.write(again)
                for tx_hash, body in again:
                    del live[tx_hash]
                    live[tx_hash] = body  # now the newest
            elif op == "release":
                chosen = [h for i, h in enumerate(live) if n >> (i % 12) & 1]
                journal.release(chosen)
                for tx_hash in chosen:
                    del live[tx_hash]
            else:
                journal.close()
                journal = Journal(Path(folder))
                kept = set(journal.read())
                assert set(live.values()) <= kept  # the crash lost nothing pending
                journal.restart(list(live.items()))
            read = journal.read()
            assert set(live.values()) <= set(read) <= set(written.values())
            assert list(live.values()) == [b for b in _newest_copies(read) if b in live.values()]
            if not live:
                assert journal.segments() == []  # nothing pending: no file is kept
        journal.release(list(live))  # the rest commit
        assert journal.segments() == []
        journal.close()


def _newest_copies(read: list[str]) -> list[str]:
    """The bodies in the order of their newest copy (a body written again moves to the end)."""
    return list(dict.fromkeys(reversed(read)))[::-1]


def test_a_torn_end_loses_only_the_record_being_written_and_a_damaged_one_what_follows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path)
    journal.write([("a", '{"a":1}'), ("b", '{"b":2}')])
    journal.close()
    (segment,) = journal.segments()
    intact = segment.read_bytes()
    with segment.open("ab") as handle:  # a write cut short by a crash: never acknowledged
        handle.write(RECORD.pack(50, 0) + b'{"c":')
    with caplog.at_level(logging.WARNING, logger="chain.journal"):
        assert Journal(tmp_path).read() == ['{"a":1}', '{"b":2}']
    assert "torn record" in caplog.text

    caplog.clear()
    damaged = bytearray(intact)
    damaged[RECORD.size + 2] ^= 0xFF  # the first record's body, under its CRC
    segment.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="chain.journal"):
        assert Journal(tmp_path).read() == []
    assert "damaged record" in caplog.text


def test_a_failed_write_acknowledges_nothing_and_the_writes_after_it_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path)
    journal.write([("a", '{"a":1}')])
    real_write = os.write
    calls = {"n": 0}

    def full_disk(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            real_write(fd, bytes(data)[:5])  # part of the batch reaches the file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)  # the journal's only os.write in this window
    with pytest.raises(StorageError, match=r"cannot write the mempool journal.*No space left"):
        journal.write([("a", '{"a":1}'), ("b", '{"b":2}')])  # "a" again: its copy must stay
    journal.write([("c", '{"c":3}')])
    journal.close()
    assert Journal(tmp_path).read() == ['{"a":1}', '{"c":3}']


def _anchors(sign: Callable[..., Tx], keys: SimpleNamespace, count: int) -> list[Tx]:
    return [
        sign(keys.agency, "anchors", "anchor", {"root": f"{n:064x}", "count": 1, "label": "j"})
        for n in range(1, count + 1)
    ]


def test_a_node_keeps_what_it_acknowledged_in_its_journal_until_the_block_holding_it_is_stored(
    make_ledger: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mempool"

    def open_node() -> Node:  # not started: blocks are produced by the test
        options = NodeOptions(block_interval_ms=0, mempool_journal=folder)
        return Node(make_ledger(), key=keys.validator, options=options)

    first = open_node()
    first.produce_block(allow_empty=True)
    txs = _anchors(sign, keys, 5)
    first.submit(txs[:3])
    first.submit(txs[3:])
    assert first.ledger.store.pending() == []  # in the journal, not the block store
    assert len(Journal(folder).read()) == 5

    # A crash: the node is dropped, and its files closed as the OS closes a killed process's
    first.mempool.close()
    second = open_node()
    assert len(second.mempool) == 5
    assert second.ledger.store.pending_rows is False  # blocks no longer delete rows
    second.produce_block()
    assert second.ledger.height == 2 and len(second.mempool) == 0
    assert Journal(folder).segments() == []  # all five stored: the segment went

    second.mempool.close()
    third = open_node()
    assert len(third.mempool) == 0


def test_rows_kept_by_a_node_from_before_the_journal_move_into_it_at_start(
    make_ledger: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    tmp_path: Path,
) -> None:
    ledger = make_ledger()
    old = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    old.produce_block(allow_empty=True)
    txs = _anchors(sign, keys, 3)
    old.submit(txs)
    assert len(ledger.store.pending()) == 3  # a node without a journal keeps rows

    old.mempool.close()
    options = NodeOptions(block_interval_ms=0, mempool_journal=tmp_path / "mempool")
    upgraded = Node(make_ledger(), key=keys.validator, options=options)
    assert {tx.hash for tx in txs} <= set(upgraded.mempool._txs)
    assert upgraded.ledger.store.pending() == []
    assert len(Journal(tmp_path / "mempool").read()) == 3
    upgraded.produce_block()
    assert {tx.hash for tx in txs} <= set(upgraded.ledger.live_txs)
    assert Journal(tmp_path / "mempool").segments() == []


def test_a_second_writer_of_one_journal_is_refused_and_readers_are_not(tmp_path: Path) -> None:
    """Two nodes on one home would each remove the segments the other appends to: the second
    is refused with the reason; a backup reading the journal meanwhile is not."""
    first = Journal(tmp_path)
    first.write([("a", '{"a":1}')])
    second = Journal(tmp_path)
    assert second.read() == ['{"a":1}']
    with pytest.raises(StorageError, match="in use by another node"):
        second.restart([])
    with pytest.raises(StorageError, match="in use by another node"):
        second.write([("b", '{"b":2}')])
    first.close()
    second.restart([("a", '{"a":1}')])  # once the first is gone, the second takes over
    assert Journal(tmp_path).read() == ['{"a":1}']
    second.close()


def test_a_block_being_written_keeps_its_transactions_in_the_journal(
    make_ledger: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    tmp_path: Path,
) -> None:
    """Pipelined, a block is committed in memory and written behind: until the write, a crash
    must find its transactions in the journal, even where a client's retry was admitted again
    as the block committed and the next block's reap found the retry stale."""
    folder = tmp_path / "mempool"
    options = NodeOptions(block_interval_ms=0, mempool_journal=folder)
    node = Node(make_ledger(), key=keys.validator, options=options)
    node.produce_block(allow_empty=True)
    (tx,) = _anchors(sign, keys, 1)
    node.submit([tx])
    store = node.ledger.store
    release, entered = threading.Event(), threading.Event()
    real_commit = store.commit_block

    def slow_commit(**kwargs: Any) -> None:
        entered.set()
        assert release.wait(10)
        real_commit(**kwargs)

    store.commit_block = slow_commit  # type: ignore[method-assign]
    try:
        node.produce_block(pipelined=True)  # committed in memory; its write waits
        assert entered.wait(10)
        assert tx.hash not in node.mempool
        node.mempool.add([tx])  # the client's retry, admitted as the block committed
        assert node.mempool.reap(10, lambda t: t.hash not in node.ledger.live_txs) == []
        assert tx.encode().decode() in Journal(folder).read()  # what a crash now would find
    finally:
        release.set()
    node.ledger.flush()
    assert node.ledger.durable.height == 2
    deadline = time.monotonic() + 10  # released as the writer tells the block's waiters
    while Journal(folder).segments() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Journal(folder).segments() == []  # its block stored: released, retry and all


def test_a_journal_taking_over_numbers_its_segments_after_its_predecessors(
    tmp_path: Path,
) -> None:
    """A node started on a home another node left: the new writer's segments never reuse a
    number the old one wrote meanwhile."""
    successor = Journal(tmp_path)  # opened while the first still writes
    first = Journal(tmp_path)
    first.write([("a", '{"a":1}')])
    first.close()
    successor.write([("b", '{"b":2}')])
    assert [p.name for p in successor.segments()] == [
        "pending-00000001.log",
        "pending-00000002.log",
    ]
    assert successor.read() == ['{"a":1}', '{"b":2}']
    successor.close()
