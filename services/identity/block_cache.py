"""Chain reads kept until the node commits the next block, for a service on a remote node.

Against a remote node each state read was an HTTP round trip (five per verification: 17 ms of a
worker's CPU and a third of the node's, 37 verifications/s). State changes only with a block,
so a read is kept until the node's event stream announces a block with transactions, or this
process commits a write of its own; a proof (against the header of its height) until then or
PROOF_KEEP_S, whichever comes first. Only the hot paths (a verification, a bearer key that is
active) answer from what is kept, inside memory_only(); every other read goes to the node and
refreshes what is kept, so a client that wrote through the node and asks at once sees its write
there. While the stream is down nothing is kept, so a kept read never answers state older than
the last block this process heard of: at most the stream's delay (milliseconds) behind the node.
The node's blocks come from the service's one BlockFeed (block_feed.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

from services.identity.block_feed import Block, BlockFeed

MAX_ENTRIES = 65_536  # per block; a block's reads beyond it go to the node
# A proof is kept across empty blocks (the state it proves is unchanged) for this long at most,
# so its header is never much older than the chain's tip: rebuilding 6 proofs per credential at
# every empty block (each 5 s) kept the node busy at 0.48 of a core under 2 workers
PROOF_KEEP_S = 30.0

# Set while a caller may only read what is kept (it runs on an event loop, which a round trip
# to the node must not hold up): a value not kept raises NotKept instead of being loaded
_MEMORY_ONLY: ContextVar[bool] = ContextVar("memory_only", default=False)


class NotKept(LookupError):
    """A read in memory_only() needed the node or the database: do it again where it may wait."""


@contextmanager
def memory_only() -> Iterator[None]:
    """Reads through a BlockCache (and NoSession) inside raise NotKept rather than wait."""
    token = _MEMORY_ONLY.set(True)
    try:
        yield
    finally:
        _MEMORY_ONLY.reset(token)


class NoSession:
    """Stands for a database session in memory_only(): any use raises NotKept."""

    def __getattr__(self, name: str) -> NoReturn:
        raise NotKept(f"the database ({name})")


class BlockCache:
    """Values read at the last committed block this process heard of. Keys are tuples whose first
    item says what they hold: "proof" entries go at every block, the others at blocks with
    transactions (an empty block changes no state)."""

    def __init__(self, feed: BlockFeed, *, max_entries: int = MAX_ENTRIES) -> None:
        self._feed = feed
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], Any] = {}
        self._generation = 0
        self._live = False  # following the node's blocks: only then are values kept
        self.proof_keep_s = PROOF_KEEP_S
        self._proofs_from = time.monotonic()  # when the kept proofs were last emptied
        feed.listen(self)

    def start(self) -> None:
        """Follow the node's blocks (the feed's thread, started once)."""
        self._feed.start()

    def get(self, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
        """In memory_only(): the value kept for `key`, else NotKept. Otherwise always `load()`,
        kept for memory_only() readers if no block came meanwhile: a route that reads outside
        memory_only() sees what the node has now (a client that wrote through the node and asks
        at once gets its write), only the hot paths accept the stream's delay."""
        with self._lock:
            generation, live = self._generation, self._live
            if _MEMORY_ONLY.get():
                if live and key in self._values:
                    return self._values[key]
                raise NotKept(f"the node ({key[0]} {key[-1]})")
        value = load()
        with self._lock:
            # A block (or a write) while loading: the value may be older than the new block
            if live and self._generation == generation and len(self._values) < self.max_entries:
                self._values[key] = value
        return value

    def forget(self, *, proofs_only: bool = False) -> None:
        """Drop the kept values: a block was committed (by the node, or by a write here)."""
        with self._lock:
            self._generation += 1
            self._proofs_from = time.monotonic()
            if proofs_only:
                self._values = {k: v for k, v in self._values.items() if k[0] != "proof"}
            else:
                self._values.clear()

    def on_block(self, block: Block) -> None:
        """Keep values from the first block the feed delivers; drop them at each block that
        changed state (and the proofs once they have been kept PROOF_KEEP_S)."""
        if not self._live:
            self._set_live(True)
        elif block.get("tx_count") != 0:
            self.forget()
        elif time.monotonic() - self._proofs_from >= self.proof_keep_s:
            self.forget(proofs_only=True)

    def on_break(self) -> None:
        self._set_live(False)

    def _set_live(self, live: bool) -> None:
        with self._lock:
            self._live = live
            self._generation += 1
            self._values.clear()
