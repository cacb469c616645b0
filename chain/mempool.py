"""Pending transactions: de-duplicated, bounded, and persisted before they are acknowledged.

What a client hands a node is written to its persisted mempool before the node answers 2xx;
copies a peer gossips are held in memory only. The accepting node keeps its copy until the
transaction commits and gossips it again after a restart, so a peer's copy is a second chance,
not the promise: persisting it too would make every node write every transaction twice more
(pending row in, pending row out) for a guarantee the accepting node already gives.

A node with a home keeps them in its journal (chain.journal: segment files appended to, each
removed once nothing in it is pending); a node without one (an embedded or in-memory store) in
the block store's pending rows, each deleted with its block's write."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chain.errors import ChainError, TxRejected
from chain.journal import Journal
from chain.store import BlockStore
from chain.tx import Tx, tx_from_canonical, tx_from_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admitted:
    hash: str
    duplicate: bool


class Durable(Protocol):
    """Where a client's pending transactions are kept across a restart."""

    def read(self) -> list[str]:
        """The bodies kept, oldest first (some may have committed since, or expired)."""

    def restart(self, kept: Sequence[tuple[str, str]], dropped: Sequence[str]) -> None:
        """After `read`: `kept` (hash, body) are still pending, `dropped` are not."""

    def write(self, entries: Sequence[tuple[str, int, str]]) -> None:
        """Keep (hash, sequence, body) entries, durably before this returns."""

    def release(self, hashes: Iterable[str], *, stored: bool) -> None:
        """These are pending no more: `stored` in a block on disk, or else dropped."""

    def close(self) -> None: ...


class PendingRows:
    """The block store's pending rows: in at the door, out in the same database transaction
    as the block that holds them."""

    def __init__(self, store: BlockStore) -> None:
        self.store = store

    def read(self) -> list[str]:
        return self.store.pending()

    def restart(self, kept: Sequence[tuple[str, str]], dropped: Sequence[str]) -> None:
        self.store.drop_pending(dropped)

    def write(self, entries: Sequence[tuple[str, int, str]]) -> None:
        self.store.add_pending(entries)

    def release(self, hashes: Iterable[str], *, stored: bool) -> None:
        if not stored:  # a stored block's rows went with it
            self.store.drop_pending(list(hashes))

    def close(self) -> None:
        pass


class JournalPending:
    """The node's journal. Rows a store still holds from before the journal are read first (they
    are older), moved into the journal at restart, and the store stops deleting rows with
    each block from then on."""

    def __init__(self, store: BlockStore, journal: Journal) -> None:
        self.store = store
        self.journal = journal

    def read(self) -> list[str]:
        return [*self.store.pending(), *self.journal.read()]

    def restart(self, kept: Sequence[tuple[str, str]], dropped: Sequence[str]) -> None:
        self.journal.restart(kept)  # on disk before the rows go: a crash between repeats some
        self.store.clear_pending()
        self.store.pending_rows = False

    def write(self, entries: Sequence[tuple[str, int, str]]) -> None:
        self.journal.write([(tx_hash, body) for tx_hash, _, body in entries])

    def release(self, hashes: Iterable[str], *, stored: bool) -> None:
        self.journal.release(hashes)

    def close(self) -> None:
        self.journal.close()


class Mempool:
    """FIFO of checked transactions; full means 429 to the caller, never a silent drop.

    The capacity is the back-pressure: a node admits no more than it can commit in a few
    seconds, so overload turns into refusals at the door (with Retry-After) instead of a
    backlog that every commit latency waits behind."""

    def __init__(
        self,
        store: BlockStore,
        *,
        capacity: int = 20_000,
        journal: Journal | None = None,
        committed: Callable[[str], bool] = lambda tx_hash: False,
    ) -> None:
        self.capacity = capacity
        # Whether a transaction is committed (its block maybe not yet stored): such a copy
        # found stale by `reap` stays durable until its block's write releases it
        self._committed = committed
        self.durable: Durable = (
            PendingRows(store) if journal is None else JournalPending(store, journal)
        )
        self._txs: OrderedDict[str, Tx] = OrderedDict()
        self._volatile: set[str] = set()  # held but not persisted (gossiped by a peer)
        self._seq = 0
        self._lock = threading.Lock()
        self.not_empty = threading.Condition(self._lock)
        # Called with (new transactions, whether to gossip them) after they are persisted
        self.listeners: list[Callable[[list[Tx], bool], None]] = []

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: str) -> bool:
        return tx_hash in self._txs

    def get(self, tx_hash: str) -> Tx | None:
        return self._txs.get(tx_hash)

    def restore(self, check: Callable[[Tx], None]) -> int:
        """Reload persisted pending transactions after a restart, dropping those now invalid
        (committed or expired since they were kept, among them)."""
        dropped: list[str] = []
        kept: dict[str, str] = {}
        for body in self.durable.read():
            try:
                tx = _stored_tx(body)
            except (ChainError, ValueError) as exc:  # unreadable: it must not stop the start
                log.warning("skipping an unreadable pending transaction after restart: %s", exc)
                continue
            if tx.hash in kept:
                continue  # kept twice (a crash while the journal was rewritten)
            try:
                check(tx)
            except ChainError as exc:
                log.warning("dropping pending tx %s after restart: %s", tx.hash, exc)
                dropped.append(tx.hash)
                continue
            self._txs[tx.hash] = tx
            kept[tx.hash] = tx.encode().decode()  # canonical, as the door writes it
        self.durable.restart(list(kept.items()), dropped)
        self._seq = len(self._txs)
        return len(self._txs)

    def add(self, txs: Sequence[Tx], *, gossip: bool = True) -> list[Admitted]:
        """Admit checked transactions. With `gossip` (a client's submission) the new ones and
        any held only in memory are persisted, then all are acknowledged and the new ones
        gossiped; without it (a peer's gossip) the new ones are held in memory."""
        with self._lock:
            new = [tx for tx in {tx.hash: tx for tx in txs}.values() if tx.hash not in self._txs]
            if len(self._txs) + len(new) > self.capacity:
                raise TxRejected(
                    "mempool_full",
                    f"{len(self._txs)} transactions pending (capacity {self.capacity}):"
                    " retry shortly",
                    status=429,
                )
            if gossip:
                # A client's copy of one a peer gossiped: acknowledged only once it is durable
                asked = dict.fromkeys(tx.hash for tx in txs)  # each once, in order
                held = [self._txs[h] for h in asked if h in self._volatile]
                entries = []
                for tx in [*new, *held]:
                    self._seq += 1
                    entries.append((tx.hash, self._seq, tx.encode().decode()))
                self.durable.write(entries)
                self._volatile.difference_update(tx.hash for tx in held)
            else:
                self._volatile.update(tx.hash for tx in new)
            for tx in new:
                self._txs[tx.hash] = tx
            if new:
                self.not_empty.notify_all()
        if new:
            for listener in self.listeners:
                listener(new, gossip)
        fresh = {tx.hash for tx in new}
        out = []
        for tx in txs:
            out.append(Admitted(tx.hash, tx.hash not in fresh))
            fresh.discard(tx.hash)  # a second copy in the same call is a duplicate
        return out

    def reap(self, max_txs: int, keep: Callable[[Tx], bool]) -> list[Tx]:
        """Up to `max_txs` transactions in arrival order; those `keep` refuses are dropped."""
        out: list[Tx] = []
        stale: list[str] = []
        with self._lock:
            for digest, tx in self._txs.items():
                if len(out) >= max_txs:
                    break
                if keep(tx):
                    out.append(tx)
                else:
                    stale.append(digest)
            for digest in stale:
                del self._txs[digest]
            # A committed copy (a client's retry admitted as its block committed) is released
            # by that block's write, not here: until then the journal is its only record (had
            # the write come first, the copy stays until the next start drops it as committed)
            durable = [d for d in stale if d not in self._volatile and not self._committed(d)]
            self._volatile.difference_update(stale)
        if durable:
            self.durable.release(durable, stored=False)
        return out

    def remove(self, hashes: Sequence[str], *, stored: bool = False) -> None:
        """Forget committed transactions; once their block is `stored` on disk, no longer
        keep them durable either (a crash before that must find them pending still)."""
        with self._lock:
            for digest in hashes:
                self._txs.pop(digest, None)
            self._volatile.difference_update(hashes)
        if stored:
            try:
                self.durable.release(hashes, stored=True)
            except ChainError as exc:  # a segment left behind: dropped at the next start
                log.warning("could not release stored transactions from the journal: %s", exc)

    def close(self) -> None:
        self.durable.close()

    def wait(self, timeout_s: float) -> bool:
        with self._lock:
            if self._txs:
                return True
            return self.not_empty.wait(timeout_s)


def _stored_tx(body: str) -> Tx:
    """A persisted pending transaction: its canonical JSON (rows written before 0.2 hold
    Python's json.dumps of it, parsed the long way)."""
    try:
        return tx_from_canonical(body.encode())
    except TxRejected:
        return tx_from_json(json.loads(body))
