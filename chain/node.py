"""A node: the ledger, its mempool, and (for now) a single validator producing blocks.

The block producer runs in its own thread; callers wait for commits through a callback per
transaction (`on_commit`), on which the thread-safe futures of synchronous embedded services and
the awaitables of the async HTTP API are built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.block import Certificate, Receipt, sign_precommit
from chain.errors import ChainError, TxRejected
from chain.home import NodeHome
from chain.journal import MEMPOOL_FOLDER, Journal
from chain.ledger import BlockResult, Ledger
from chain.mempool import Admitted, Mempool
from chain.suites import SuiteKey
from chain.tx import Tx, verify_signatures

log = logging.getLogger(__name__)


# Called with a transaction's receipt once it commits
CommitCallback = Callable[[dict[str, Any]], None]


@dataclass
class Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[dict[str, Any] | None]


# Each signature check on the verification pool releases the GIL and must win it back; beside
# a thread running Python (execution, consensus, the HTTP door) that took up to the default
# 5 ms switch interval per check: 2,000 fresh signatures beside one busy thread verified at
# 2,785-3,049/s, 7,020-10,975/s with 0.5 ms (0.2-2 ms alike)
GIL_SWITCH_INTERVAL_S = 0.0005


@dataclass
class NodeOptions:
    block_interval_ms: int = 20
    mempool_capacity: int = 20_000
    # Back-pressure: the door admits while the pending backlog is under this many seconds of
    # the recent commit rate (never under admit_floor, never over mempool_capacity)
    backlog_target_s: float = 2.0
    admit_floor: int = 1_000
    max_block_txs: int | None = None
    # The folder of the mempool's journal (chain.journal; a node home's `mempool`); None keeps
    # pending transactions as rows of the block store (an embedded or in-memory node)
    mempool_journal: Path | None = None
    clock_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    # How long a thread holds the GIL before one waiting for it is let in (the process's, set
    # by start; None leaves the interpreter's 5 ms)
    gil_switch_interval_s: float | None = GIL_SWITCH_INTERVAL_S


def options_for(home: NodeHome, *, block_interval_ms: int | None = None) -> NodeOptions:
    """The options a node home's settings (its node.json) give, the mempool's journal in the
    home; `block_interval_ms` overrides the file's where a consensus engine paces the blocks."""
    settings = home.settings
    return NodeOptions(
        block_interval_ms=(
            settings.block_interval_ms if block_interval_ms is None else block_interval_ms
        ),
        mempool_capacity=settings.mempool_capacity,
        backlog_target_s=settings.backlog_target_s,
        mempool_journal=home.path / MEMPOOL_FOLDER,
    )


class Node:
    """One validator's view of the chain: admit, order, execute, certify, commit, notify."""

    def __init__(
        self, ledger: Ledger, *, key: SuiteKey | None, options: NodeOptions | None = None
    ) -> None:
        self.ledger = ledger
        self.key = key
        self.options = options or NodeOptions()
        journal = None
        if self.options.mempool_journal is not None:
            # Flushed to disk on every write where the store's commits are (PostgreSQL)
            fsync = ledger.store.engine.dialect.name != "sqlite"
            journal = Journal(self.options.mempool_journal, fsync=fsync)
        self.mempool = Mempool(
            ledger.store,
            capacity=self.options.mempool_capacity,
            journal=journal,
            committed=lambda tx_hash: tx_hash in ledger.live_txs,
        )
        self._waiters: dict[str, list[CommitCallback]] = defaultdict(list)
        self._waiters_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._rate_tx_per_s = 0.0  # committed transactions per second while busy, smoothed
        self._last_commit_at: float | None = None
        self._busy = False  # transactions were pending when the last block committed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fatal: BaseException | None = None
        # A consensus engine (chain.consensus.engine.Engine) when the node runs with peers;
        # without one, a single validator produces blocks itself.
        self.engine: Any = None
        restored = self.mempool.restore(lambda tx: self.ledger.check_tx(tx))
        if restored:
            log.info("restored %d pending transactions", restored)
        if key is not None and key.public_hex not in ledger.validator_powers():
            raise ChainError(f"key {key.public_hex[:16]}… is not a validator of {ledger.chain_id}")

    @property
    def role(self) -> str:
        return "validator" if self.key is not None else "observer"

    # -- admission -----------------------------------------------------------------------

    def admission_limit(self) -> int:
        """Pending transactions beyond which the door refuses new ones with 429."""
        options = self.options
        adaptive = int(self._rate_tx_per_s * options.backlog_target_s)
        return min(options.mempool_capacity, max(options.admit_floor, adaptive))

    def check_admission(self) -> None:
        """Refuse at once, before parsing or verifying anything, when the backlog has reached
        the limit: under overload the door's own work must not grow with the offered load.

        A request arriving below the limit is admitted whole, even if its batch carries the
        backlog past the limit (the mempool's capacity still bounds it): refusing a batch
        because the backlog plus the batch would pass the limit admitted large batches only
        into an empty mempool, so under overload the node idled between them (0.72 x its
        saturated throughput at twice the saturating rate, batches of 1,211)."""
        pending, limit = len(self.mempool), self.admission_limit()
        if pending >= limit:
            raise TxRejected(
                "mempool_full",
                f"{pending} transactions pending (admitting up to {limit}, about"
                f" {self.options.backlog_target_s:g} s of commits): retry shortly",
                status=429,
            )

    def submit(self, txs: Sequence[Tx]) -> list[Admitted]:
        """Check and admit transactions; the first refusal raises with its code."""
        live = self.ledger.live_txs
        if any(t.hash not in self.mempool and t.hash not in live for t in txs):
            # One already admitted (pending, or committed) adds nothing to the backlog: whoever
            # submits it again to wait for its receipt is not refused as mempool_full
            self.check_admission()
        # The other suite's transactions are refused by check_tx unverified (an SM2 check would
        # cost an Ed25519 chain five of its own)
        suite = self.ledger.genesis.crypto
        verify_signatures([t for t in txs if t.hash not in self.mempool and t.suite == suite])
        for tx in txs:
            if tx.hash not in self.mempool:
                self.ledger.check_tx(tx)
        return self.mempool.add(txs)

    def on_commit(self, tx_hash: str, callback: CommitCallback) -> Callable[[], None]:
        """Call `callback` with the receipt once the transaction commits (on the thread that
        stored its block, or here at once if it already has), and return what cancels that.
        A plain callback, not a Future: a waiter costs a list entry, and a block's waiters are
        told under one lock. It runs on the thread that stores blocks, so it must be quick; one
        that raises is logged, and the block's other waiters are still told. Cancelling is
        best-effort: a callback whose block is being told as it is cancelled still runs once."""
        with self._waiters_lock:
            self._waiters[tx_hash].append(callback)
        ledger = self.ledger
        if tx_hash in ledger.unwritten or (
            tx_hash in self.mempool and tx_hash not in ledger.live_txs
        ):
            # Still pending now that the waiter is registered (in the mempool, or in a block
            # whose write is in flight): its commit (after_commit, once the block is on disk,
            # resolves the waiters) will call it. A copy admitted just after its block
            # committed is not: that one is found in the store. Looking in the store for a
            # transaction of a block still being written cost a database read per waiter and
            # found nothing.
            return lambda: self._forget(tx_hash, callback)
        found = ledger.store.tx(tx_hash)
        # Resolve now only if the ledger has applied that block: a receipt must never arrive
        # before its state can be read (after_commit resolves the rest once it has)
        if found is not None and found[0] <= ledger.height:
            with self._waiters_lock:
                waiting = self._waiters.pop(tx_hash, [])
            _tell(waiting, found[2])
        return lambda: self._forget(tx_hash, callback)

    def wait_future(self, tx_hash: str) -> Future[dict[str, Any]]:
        """A future resolved with the receipt when the transaction commits."""
        future: Future[dict[str, Any]] = Future()

        def settle(receipt: dict[str, Any]) -> None:
            # A waiter whose wait timed out may cancel its future at any moment
            with contextlib.suppress(InvalidStateError):
                future.set_result(receipt)

        cancel = self.on_commit(tx_hash, settle)
        future.add_done_callback(lambda done: cancel() if done.cancelled() else None)
        return future

    def wait(self, tx_hash: str, timeout_s: float) -> dict[str, Any] | None:
        """Block until the transaction commits; None on timeout."""
        future = self.wait_future(tx_hash)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            if not future.cancel():  # the receipt came as the wait ran out
                return future.result()
            return None  # cancelled: its waiter is forgotten

    async def wait_async(self, tx_hash: str, timeout_s: float) -> dict[str, Any] | None:
        """Await the transaction's commit on the running loop; None on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()

        def settle(receipt: dict[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle_async, future, receipt)

        cancel = self.on_commit(tx_hash, settle)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            cancel()

    def _forget(self, tx_hash: str, callback: CommitCallback) -> None:
        with self._waiters_lock:
            waiting = self._waiters.get(tx_hash)
            if waiting is None:
                return
            with contextlib.suppress(ValueError):  # told already, or never registered
                waiting.remove(callback)
            if not waiting:
                self._waiters.pop(tx_hash, None)

    # -- events --------------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1000) -> Subscriber:
        sub = Subscriber(asyncio.get_running_loop(), asyncio.Queue(maxsize))
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def _publish(self, message: dict[str, Any]) -> None:
        for sub in list(self._subscribers):

            def put(sub: Subscriber = sub) -> None:
                if sub.queue.full():
                    # A subscriber that cannot keep up is cut off, told so, and may resume by height
                    self.unsubscribe(sub)
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)
                else:
                    sub.queue.put_nowait(message)

            try:
                sub.loop.call_soon_threadsafe(put)
            except RuntimeError:  # its loop has closed
                self.unsubscribe(sub)

    # -- block production ----------------------------------------------------------------

    def start(self) -> None:
        if self.options.gil_switch_interval_s is not None:
            sys.setswitchinterval(self.options.gil_switch_interval_s)
        if self.engine is not None:
            self.engine.start()
            return
        if self.key is None or self._thread is not None:
            return
        if self.ledger.height == 0:
            # Certify the genesis state at once, so every state read has a header to prove against
            self.produce_block(allow_empty=True)
        self._thread = threading.Thread(target=self._run, name="block-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        self._stop.set()
        with self.mempool.not_empty:
            self.mempool.not_empty.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
            try:
                self.ledger.flush()  # blocks produced before the stop reach the disk
            except ChainError as exc:  # the producer stopped on it already (self.fatal)
                log.warning("blocks left unwritten at stop: %s", exc)
        # The writer thread ends once what it holds is written: left running, a stopped node
        # (a test's, a bench run's) kept its thread and its whole ledger alive for good
        self.ledger.close()
        self.mempool.close()  # a write after this (a late submission) opens a new segment

    def _run(self) -> None:
        interval_s = self.options.block_interval_ms / 1000
        while not self._stop.is_set():
            if not self.mempool.wait(0.5):
                continue
            try:
                self.produce_block(pipelined=True)
            except Exception as exc:  # storage gone or code mismatch: stop rather than diverge
                log.exception("block production stopped")
                self.fatal = exc
                return
            if interval_s:
                self._stop.wait(interval_s)

    def produce_block(
        self, *, allow_empty: bool = False, pipelined: bool = False
    ) -> BlockResult | None:
        """Execute pending transactions as the next block, certify it and commit it.

        `pipelined` (the producer thread) commits the block in memory and leaves its write to
        the ledger's writer thread, which overlaps it with the next block's execution (SQLite
        works without the GIL); waiters hear of the block once it is on disk, and the next
        block is signed only after this one is stored (persist-before-sign). Without it the
        block is on disk and its waiters told when this returns."""
        if self.key is None:
            raise ChainError("an observer does not produce blocks")
        ledger = self.ledger
        height = ledger.height + 1
        limit = self.options.max_block_txs or ledger.genesis.params.max_block_txs
        txs = self.mempool.reap(
            limit, lambda tx: tx.expiry_height >= height and tx.hash not in ledger.live_txs
        )
        if not txs and not allow_empty:
            return None
        last = ledger.last_header.time_ms if ledger.last_header else ledger.genesis.genesis_time_ms
        time_ms = max(self.options.clock_ms(), last + 1)
        result = ledger.execute(
            txs,
            height=height,
            time_ms=time_ms,
            proposer=self.key.public_hex,
        )
        block_hash = result.header.hash
        # Verify the previous block is on disk before this one is signed: what a validator
        # signed never runs ahead of what it stored
        ledger.flush()
        sig = sign_precommit(
            self.key, chain_id=ledger.chain_id, height=height, round_=0, block_hash=block_hash
        )
        certificate = Certificate(result.header.height, 0, block_hash, [sig])  # type: ignore[arg-type]
        if not pipelined:
            ledger.commit(result, certificate)
            self.after_commit(result)
            return result
        ledger.commit(result, certificate, background=True, on_durable=self.after_commit)
        # Out of the mempool now, not once stored: the next block's reap would otherwise take
        # them for stale copies and delete their pending rows in a write of its own
        self.mempool.remove([tx.hash for tx in result.txs])
        return result

    def after_commit(self, result: BlockResult) -> None:
        """Tell waiters and subscribers about a block committed and stored (any block producer
        calls this)."""
        self.mempool.remove([tx.hash for tx in result.txs], stored=True)
        self._observe_rate(len(result.txs), pending=len(self.mempool))
        with self._waiters_lock:
            if self._waiters:
                take = self._waiters.pop
                waited = [(r, w) for r in result.receipts if (w := take(r.tx, None))]
            else:
                waited = []
        for receipt, waiting in waited:
            _tell(waiting, receipt.to_json())
        if self._subscribers:
            self._publish(
                block_message(result.header.to_json(), result.header.hash, result.receipts)
            )

    def _observe_rate(self, committed: int, *, pending: int) -> None:
        """Learn the commit rate from busy intervals only: from a commit that left transactions
        pending to the next, the node committed as fast as it could. An interval that began
        with nothing pending measures the offered load, not the node: after a few quiet
        seconds (an empty block) it set the estimate, and the admission limit with it, to the
        floor, so the next burst met 429s at 1,000 pending while the estimate climbed back."""
        now = time.monotonic()
        if self._last_commit_at is not None and self._busy:
            gap = max(now - self._last_commit_at, 1e-3)
            weight = min(1.0, gap / 5.0)  # about a five-second memory
            self._rate_tx_per_s += weight * (committed / gap - self._rate_tx_per_s)
        self._last_commit_at = now
        self._busy = pending > 0

    def submit_and_wait(self, tx: Tx, timeout_s: float = 30) -> dict[str, Any]:
        """Admit one transaction and wait for its receipt (embedded callers)."""
        try:
            self.submit([tx])
        except TxRejected as exc:
            if exc.code != "tx_replayed":
                raise
        receipt = self.wait(tx.hash, timeout_s)
        if receipt is None:
            raise TxRejected(
                "commit_timeout", f"not committed within {timeout_s}s; still pending", status=504
            )
        return receipt


def _tell(waiting: list[CommitCallback], receipt: dict[str, Any]) -> None:
    for callback in waiting:
        try:
            callback(receipt)
        except Exception:  # one waiter's failure must not keep the others from their receipt
            log.exception("a commit callback failed")


def _settle_async(future: asyncio.Future[dict[str, Any]], receipt: dict[str, Any]) -> None:
    if not future.done():  # cancelled by its timeout meanwhile
        future.set_result(receipt)


def block_message(
    header: dict[str, Any], block_hash: str, receipts: Sequence[Receipt]
) -> dict[str, Any]:
    """What the event stream says about a committed block."""
    return {
        "type": "block",
        "height": header["height"],
        "hash": block_hash,
        "time_ms": header["time_ms"],
        "tx_count": header["tx_count"],
        "events": [{**e.to_json(), "tx": r.tx} for r in receipts for e in r.events],
    }
