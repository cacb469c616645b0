"""The chain's committed blocks, followed in one daemon thread and handed to the listeners.

From a remote node the stream is its event stream from the current height (the node replays
that block at once, so a listener knows the stream is up as soon as it is). The embedded chain
runs in this process: the stream is a subscription to its node, opened with a marker block at
the height reached when it was made (every block up to it is in what reads see; messages of
blocks up to it may still follow, late), and it ticks while no block comes. Listeners hear
every block in height order, and `on_break` whenever the stream ended or broke (nothing they
kept from it holds any more); the feed opens a new stream RETRY_S later. One stream serves all
listeners: the reads kept until the next block (block_cache.py) and the status lists kept
current (status_mirror.py). The embedded chain's feed ends when unused for EMBEDDED_IDLE_S.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from chain.errors import ChainError
from chain.node import Node, Subscriber

log = logging.getLogger(__name__)

RETRY_S = 1.0  # wait before opening a new stream after one broke
POLL_S = 1.0  # an embedded subscription ticks this often without blocks (its node may be gone)
# An embedded chain's feed follows its node only while used: the suite's close stops it
# (ServiceContext.close), but a suite that is never closed (a bench run's) would otherwise keep
# its thread for good
EMBEDDED_IDLE_S = 300.0

Block = dict[str, Any]
# Opens a stream of committed blocks from the chain's current height; None: the chain is gone
Open = Callable[[], Iterator[Block] | None]


class Listener(Protocol):
    def on_block(self, block: Block) -> None:
        """A committed block (`height`, `tx_count`, `events`), in height order."""

    def on_break(self) -> None:
        """The stream ended or broke: blocks may be missed until the next `on_block`."""


class BlockFeed:
    """Follows the chain's committed blocks once `start`ed, for every listener; with `idle_s`,
    only while something `start`ed it in the last `idle_s` seconds."""

    def __init__(
        self, open_stream: Open, *, retry_s: float = RETRY_S, idle_s: float | None = None
    ) -> None:
        self._open = open_stream
        self.retry_s, self.idle_s = retry_s, idle_s
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._used_at = time.monotonic()
        self._stopped = threading.Event()

    def listen(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def start(self) -> bool:
        """Follow the chain in a daemon thread, unless it does already; True: it did not."""
        with self._lock:
            self._used_at = time.monotonic()
            if self._thread is not None:
                return False
            self._thread = threading.Thread(target=self._run, name="block-feed", daemon=True)
            self._thread.start()
            return True

    def stop(self) -> None:
        """Stop following (at the stream's next message, or retry, at the latest)."""
        self._stopped.set()
        self._broke()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set() and not self._idle():
                try:
                    stream = self._open()
                    if stream is None:  # the chain is gone for good (an embedded node collected)
                        return
                    for block in stream:
                        if self._stopped.is_set() or self._idle():
                            return
                        if block.get("type") == "block":  # else a tick: time to look at _idle
                            for listener in self._listeners:
                                listener.on_block(block)
                except Exception as exc:  # any failure of the stream or a listener: afresh
                    if self._stopped.is_set():
                        return
                    log.warning("following the chain's blocks failed (%s); retrying", exc)
                self._broke()
                self._stopped.wait(self.retry_s)
        finally:
            self._broke()

    def _idle(self) -> bool:
        """Unused for idle_s: the thread ends (and is forgotten, so `start` makes another)."""
        if self.idle_s is None:
            return False
        with self._lock:
            if time.monotonic() - self._used_at < self.idle_s:
                return False
            self._thread = None
            return True

    def _broke(self) -> None:
        for listener in self._listeners:
            listener.on_break()


def embedded_stream(node: Node, *, poll_s: float = POLL_S) -> Open:
    """Streams of the blocks `node` (in this process) commits, holding it only weakly: a feed
    left running (a mounted app's shutdown hooks never run) does not keep its node alive."""
    node_ref = weakref.ref(node)

    def open_stream() -> Iterator[Block] | None:
        return None if node_ref() is None else _subscription(node_ref, poll_s)

    return open_stream


def _subscription(node_ref: weakref.ref[Node], poll_s: float) -> Iterator[Block]:
    # The node hands a subscriber's messages to its event loop: this one, run while waiting
    loop = asyncio.new_event_loop()
    subscribed: Subscriber | None = None
    try:
        node = node_ref()
        if node is None:
            return
        subscribed = loop.run_until_complete(_subscribe(node))
        height = node.ledger.height
        del node  # only node_ref from here on
        yield {"type": "block", "height": height, "tx_count": 0, "events": [], "marker": True}
        while True:
            try:
                message = loop.run_until_complete(asyncio.wait_for(subscribed.queue.get(), poll_s))
            except TimeoutError:
                if node_ref() is None:
                    return
                message = {"type": "tick"}
            if message is None:
                raise ChainError("the node dropped this subscriber for being slow")
            yield message
    finally:
        node = node_ref()
        if node is not None and subscribed is not None:
            node.unsubscribe(subscribed)
        loop.close()


async def _subscribe(node: Node) -> Subscriber:
    return node.subscribe()
