"""The background block writer of a pipelined node: blocks committed in memory reach the disk
in height order on one thread, while consensus goes on with the next height."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from chain.block import Certificate, Header
from chain.errors import StorageError

log = logging.getLogger(__name__)


class Executed(Protocol):
    """A block ready to store (chain.ledger.BlockResult): the writer needs its height."""

    @property
    def header(self) -> Header: ...


BlockResult = TypeVar("BlockResult", bound=Executed)


class BlockWriter(Generic[BlockResult]):
    """Persists blocks committed in memory, in order, on one thread; the first failure stops
    it and is raised to whoever flushes (a node whose storage fails must stop, not diverge)."""

    def __init__(self, write: Callable[[BlockResult, Certificate], None]) -> None:
        self._write = write
        self._queue: queue.Queue[tuple[BlockResult, Certificate, Any] | None] = queue.Queue()
        self._pending: dict[int, None] = {}
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)  # notified as heights leave _pending
        self.error: BaseException | None = None
        # after a failure, queued blocks below this height are still written (None: none are)
        self._write_below: int | None = None
        self._thread = threading.Thread(target=self._run, name="block-writer", daemon=True)
        self._thread.start()

    def expect(self, height: int) -> None:
        """Count `height` as not yet on disk from now: called before the block is committed in
        memory, so nobody who sees the new height can read it as stored before it is queued."""
        if self.error is not None:
            raise StorageError(f"block writer stopped: {self.error}") from self.error
        with self._lock:
            self._pending[height] = None

    def cancel(self, height: int) -> None:
        """Forget an expected height that will never be queued (its commit failed in memory),
        so nobody waits for it."""
        with self._written:
            self._pending.pop(height, None)
            self._written.notify_all()

    def put(
        self,
        result: BlockResult,
        certificate: Certificate,
        on_durable: Callable[[BlockResult], None] | None,
    ) -> None:
        """Queue an expected block for writing."""
        self._queue.put((result, certificate, on_durable))

    def durable_height(self, applied: int) -> int:
        with self._lock:
            return min(self._pending, default=applied + 1) - 1

    def flush(self) -> None:
        """Wait until every height expected so far is on disk. Heights, not the queue: a block
        is expected (visible as committed) a moment before it is queued, and a reader in that
        moment must wait for it too. Heights expected after the call are not waited for, so a
        busy chain cannot keep a reader waiting. Once the writer has stopped it raises at once,
        even while blocks below the failed one are still being written."""
        with self._written:
            target = max(self._pending, default=0)
            self._written.wait_for(
                lambda: self.error is not None or min(self._pending, default=target + 1) > target
            )
        if self.error is not None:
            raise StorageError(f"block writer stopped: {self.error}") from self.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def fail(self, error: BaseException, *, from_height: int | None = None) -> None:
        """Stop writing: a block cannot be stored as committed (raised on flush). With
        `from_height`, the blocks queued below it are valid and are still written, so what
        was committed before the failure reaches the disk; without it nothing more is."""
        with self._written:
            if self.error is None:
                self.error = error
                self._write_below = from_height
            elif self._write_below is not None:
                # a later failure only lowers the limit: a block that fails to be written
                # stops the ones after it too, so the disk never holds a gap
                below = None if from_height is None else min(from_height, self._write_below)
                self._write_below = below
            self._written.notify_all()

    def _run(self) -> None:
        try:
            self._write_queued()
        except BaseException as exc:  # the thread must not die leaving flushes waiting
            log.exception("block writer stopped")  # once, here: the thread ends quietly
            self.fail(exc)

    def _stopped_before(self, height: int) -> bool:
        with self._lock:
            if self.error is None:
                return False
            return self._write_below is None or height >= self._write_below

    def _write_queued(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                result, certificate, on_durable = item
                if self._stopped_before(result.header.height):
                    continue  # after a failure nothing more is written: the node stops
                try:
                    self._write(result, certificate)
                except Exception as exc:  # storage gone: remembered, raised on flush
                    log.exception("writing block %d failed", result.header.height)
                    self.fail(exc)
                    continue
                with self._written:
                    self._pending.pop(result.header.height, None)
                    self._written.notify_all()
                if on_durable is not None:
                    try:
                        on_durable(result)
                    except Exception:  # the block is stored; telling its waiters failed
                        log.exception("after writing block %d", result.header.height)
            finally:
                self._queue.task_done()


@dataclass(frozen=True, slots=True)
class DurableTip:
    """The newest block on disk, as `/v1/status` reports it: with background writes a block is
    committed in memory (and the next one proposed) before it is stored, and a crash then loses
    it, so a height read from the node must never be one it can forget."""

    height: int
    block_hash: str | None
    time_ms: int | None
    state_root: str

    @classmethod
    def of(cls, header: Header | None, state_root: str) -> DurableTip:
        if header is None:
            return cls(0, None, None, state_root)
        return cls(header.height, header.hash, header.time_ms, state_root)
