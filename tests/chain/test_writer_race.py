"""A block committed in memory is never reported on disk before its write is even queued.

With background writes the ledger commits a block in memory (its height becomes visible) and
then hands it to the writer thread. `store_height` (what `GET /v1/blocks` and the producer's
tests rely on) counted only the blocks handed over, so in the moment between the two it
reported the new block as stored: the flaky `store_height 2 == 1` of test_producer. The height
is now counted as unwritten before it is made visible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from chain.block import Certificate, sign_precommit
from chain.errors import StorageError
from chain.ledger import Ledger
from chain.tx import Tx
from chain.writer import BlockWriter


def _certified(ledger: Ledger, keys: SimpleNamespace, txs: list[Tx]) -> tuple[Any, Certificate]:
    height = ledger.height + 1
    result = ledger.execute(
        txs, height=height, time_ms=1_700_000_000_000 + height, proposer=keys.validator.public_hex
    )
    vote = sign_precommit(
        keys.validator,
        chain_id=ledger.chain_id,
        height=height,
        round_=0,
        block_hash=result.header.hash,
    )
    return result, Certificate(height, 0, result.header.hash, [vote])  # type: ignore[arg-type]


def test_a_new_height_is_not_on_disk_while_its_write_is_being_handed_over(
    ledger: Ledger,
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger.commit(*_certified(ledger, keys, []))  # height 1, in the foreground
    assert ledger.store_height() == 1
    handing_over, go_on = threading.Event(), threading.Event()
    put = BlockWriter.put

    def slow_put(self: BlockWriter[Any], *args: Any, **kwargs: Any) -> None:
        handing_over.set()
        go_on.wait(10)
        put(self, *args, **kwargs)

    monkeypatch.setattr(BlockWriter, "put", slow_put)
    tx = sign(keys.agency, "anchors", "anchor", {"root": "ab" * 32, "count": 1, "label": "x"})
    result, certificate = _certified(ledger, keys, [tx])
    committing = threading.Thread(
        target=lambda: ledger.commit(result, certificate, background=True)
    )
    committing.start()
    try:
        assert handing_over.wait(10)
        deadline = time.monotonic() + 5
        while ledger.height < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert ledger.height == 2  # committed in memory
        assert ledger.store_height() == 1  # and not yet stored
    finally:
        go_on.set()
        committing.join(10)
    ledger.flush()
    assert ledger.store_height() == 2
    assert ledger.store.tx(tx.hash) is not None
    ledger.close()


def test_a_block_read_while_its_write_is_being_handed_over_waits_for_it(
    ledger: Ledger,
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`GET /v1/blocks/2` in the moment after height 2 is committed in memory and before its
    write is queued got 404 (flush waited for the queue, which was still empty): it now waits
    for the height itself."""
    ledger.commit(*_certified(ledger, keys, []))
    handing_over, go_on = threading.Event(), threading.Event()
    put = BlockWriter.put

    def slow_put(self: BlockWriter[Any], *args: Any, **kwargs: Any) -> None:
        handing_over.set()
        go_on.wait(10)
        put(self, *args, **kwargs)

    monkeypatch.setattr(BlockWriter, "put", slow_put)
    tx = sign(keys.agency, "anchors", "anchor", {"root": "cd" * 32, "count": 1, "label": "y"})
    result, certificate = _certified(ledger, keys, [tx])
    committing = threading.Thread(
        target=lambda: ledger.commit(result, certificate, background=True)
    )
    read: list[Any] = []
    committing.start()
    try:
        assert handing_over.wait(10)
        writer = ledger._writer()
        waiting = _signal_waits(writer, monkeypatch)
        reader = threading.Thread(target=lambda: read.append(ledger.block(2)), daemon=True)
        reader.start()
        assert waiting.wait(10)  # waiting for the write, not answering "no such block"
        assert not read
    finally:
        go_on.set()
        committing.join(10)
    reader.join(10)
    assert read and read[0] is not None
    assert read[0][0].hash == result.header.hash
    ledger.close()


def test_a_commit_that_fails_in_memory_leaves_nobody_waiting(
    ledger: Ledger,
    keys: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger.commit(*_certified(ledger, keys, []))
    result, certificate = _certified(ledger, keys, [])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise MemoryError("state commit failed")

    monkeypatch.setattr(ledger.state, "commit", broken)
    with pytest.raises(MemoryError):
        ledger.commit(result, certificate, background=True)
    flushing = threading.Thread(target=ledger.flush, daemon=True)
    flushing.start()
    flushing.join(5)
    assert not flushing.is_alive()
    assert ledger.store_height() == ledger.height == 1
    ledger.close()


def test_a_block_visible_as_committed_but_never_stored_stops_the_writer(
    ledger: Ledger,
    keys: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure after the new height became visible (a registered contract that does not
    install) leaves a block committed in memory that will never be written: readers and the
    next commit are told the writer stopped, none waits for it or reads it as stored."""
    ledger.commit(*_certified(ledger, keys, []))
    result, certificate = _certified(ledger, keys, [])

    def broken() -> None:
        raise RuntimeError("contract does not install")

    monkeypatch.setattr(result, "changes", {("governance", "contract:x"): "y"})
    monkeypatch.setattr(ledger, "_install_registered_contracts", broken)
    with pytest.raises(RuntimeError):
        ledger.commit(result, certificate, background=True)
    assert ledger.height == 2
    assert ledger.store_height() == 1
    with pytest.raises(StorageError, match="contract does not install"):
        ledger.flush()
    ledger.close()


def test_blocks_queued_before_a_failed_commit_are_still_written() -> None:
    """A block that became visible but cannot be stored stops the writer from its height on;
    the valid blocks queued before it still reach the disk (an observer may hold several)."""
    writer, written, release = _gated_writer(hold=1)
    try:
        _queue(writer, 1, 2)
        writer.expect(3)
        writer.fail(RuntimeError("contract does not install"), from_height=3)
        writer.put(SimpleNamespace(header=SimpleNamespace(height=3)), None, None)  # type: ignore[arg-type]
        release.set()
        with pytest.raises(StorageError, match="contract does not install"):
            writer.flush()
        writer.close()
        assert written == [1, 2]
        assert writer.durable_height(3) == 2
        with pytest.raises(StorageError, match="block writer stopped"):
            writer.expect(4)
    finally:
        release.set()
        writer.close()


def test_a_write_failing_below_a_failed_commit_leaves_no_gap() -> None:
    """After a failed commit at height 5, block 2 of those queued below it fails to be written:
    blocks 3 and 4 must not be written over the gap (a restart would take height 4 as the tip
    with block 2's transactions missing)."""
    writer, written, release = _gated_writer(hold=1, broken=2)
    try:
        _queue(writer, 1, 2, 3, 4)
        writer.expect(5)
        writer.fail(RuntimeError("contract does not install"), from_height=5)
        release.set()
        writer.close()
        assert written == [1]
        assert writer.durable_height(5) == 1
    finally:
        release.set()
        writer.close()


def test_a_failed_write_stops_every_later_block() -> None:
    """A storage failure stops the writer where it is: nothing queued after it is written."""
    writer, written, _ = _gated_writer(broken=2)
    _queue(writer, 1, 2, 3)
    writer.close()
    assert written == [1]
    assert writer.durable_height(3) == 1
    with pytest.raises(StorageError, match="disk full"):
        writer.flush()


def test_flush_waits_only_for_heights_expected_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy chain keeps expecting heights; a reader waits for those it could see, not more."""
    writer, written, release = _gated_writer(hold=2)
    _queue(writer, 1)
    writer.flush()
    assert written == [1]
    writer.expect(2)  # seen by the reader below; 3 is expected only after it starts waiting
    flushed = threading.Event()
    waiting = _signal_waits(writer, monkeypatch)

    def flush() -> None:
        writer.flush()
        flushed.set()

    threading.Thread(target=flush, daemon=True).start()
    try:
        assert waiting.wait(5)
        writer.expect(3)  # never written while the reader waits
        writer.put(SimpleNamespace(header=SimpleNamespace(height=2)), None, None)  # type: ignore[arg-type]
        assert not flushed.wait(0.2)
        release.set()
        assert flushed.wait(5)
        assert written == [1, 2]
        assert writer.durable_height(3) == 2
    finally:
        release.set()
        writer.cancel(3)
        writer.close()


def test_a_failing_durable_callback_does_not_stop_the_writer() -> None:
    """A block's waiters failing to be told (a waiter's future cancelled as it timed out) left
    the writer thread dead and every later flush waiting for ever."""
    written: list[int] = []
    writer: BlockWriter[Any] = BlockWriter(lambda r, c: written.append(r.header.height))

    def broken(result: Any) -> None:
        raise RuntimeError("waiter gone")

    for height in (1, 2):
        writer.expect(height)
        writer.put(SimpleNamespace(header=SimpleNamespace(height=height)), None, broken)  # type: ignore[arg-type]
    done = threading.Thread(target=writer.flush, daemon=True)
    done.start()
    done.join(5)
    assert not done.is_alive()
    assert written == [1, 2]
    assert writer.error is None
    writer.close()


def _signal_waits(writer: BlockWriter[Any], monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set when a flush starts waiting on the writer's condition."""
    waiting = threading.Event()
    condition = writer._written
    wait_for = condition.wait_for

    def signalled(predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        if not predicate():
            waiting.set()
        return wait_for(predicate, timeout)

    monkeypatch.setattr(condition, "wait_for", signalled)
    return waiting


def _gated_writer(
    hold: int | None = None, broken: int | None = None
) -> tuple[BlockWriter[Any], list[int], threading.Event]:
    """A writer recording the heights it writes: the write of `hold` waits for the returned
    event, the write of `broken` fails as a full disk would."""
    written: list[int] = []
    release = threading.Event()

    def write(result: Any, certificate: Any) -> None:
        height = result.header.height
        if height == hold:
            release.wait(10)
        if height == broken:
            raise OSError("disk full")
        written.append(height)

    return BlockWriter(write), written, release


def _queue(writer: BlockWriter[Any], *heights: int) -> None:
    """Expect and queue a stand-in block of each height, in order."""
    for height in heights:
        writer.expect(height)
        writer.put(SimpleNamespace(header=SimpleNamespace(height=height)), None, None)  # type: ignore[arg-type]
