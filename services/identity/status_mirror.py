"""Status lists kept in memory, current with the chain's blocks: a status list costs the same
to serve whatever number of credentials it holds.

The chain holds a list as one key per changed entry (contract.py), and building the W3C
bitstring from them reads the key of each credential in the list: up to 131,072, in requests of
4,096 to a remote node (service/status.py). Here a list is built so once, then kept current by
the `status_changed` events of the blocks the feed delivers (block_feed.py), whoever made the
change: this process, another worker or replica, or the agency itself through the SDK. Its
encoded and signed document is kept until its bits next change.

Never stale: a request first learns the chain's height (and the highest block a status change
of this process was in) and waits until the feed has delivered every block up to it. While the
feed is down, or has not reached that height within BARRIER_S, nothing kept is used and the list
is built from the chain for that request alone, as every request did before. Only lists holding
credentials issued here are kept, KEPT_LISTS at most (the least recently asked for goes first),
so a request for an arbitrary list keeps nothing. Concurrent requests for a list not kept wait
for one build of it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.identity import contract as c
from services.identity.block_feed import Block, BlockFeed
from services.identity.credentials.status_list import StatusList

log = logging.getLogger(__name__)

BARRIER_S = 2.0  # longest wait for the feed to reach the chain's height (it takes milliseconds)
KEPT_LISTS = 256  # lists kept at most: 16 KiB of bits each, and their document

Document = tuple[dict[str, Any], str | None]  # the list credential, and its vc+jwt (if signed)


@dataclass(frozen=True)
class ListKey:
    org: str
    list_no: int
    purpose: str


@dataclass(frozen=True)
class Built:
    """A list's bits as read from the chain; `keep`: it holds credentials issued here."""

    bits: StatusList
    keep: bool


@dataclass
class _Kept:
    bits: StatusList
    version: int = 0  # changes applied since the bits were built
    published: tuple[int, str | None, Document] | None = None  # (version, signing kid, document)


@dataclass
class _Building:
    done: threading.Event = field(default_factory=threading.Event)
    changes: list[tuple[int, int]] = field(default_factory=list)  # (index, value) meanwhile
    valid: bool = True  # False once the feed broke during the build: keep nothing of it


class StatusMirror:
    """Status list bits per (org, list, purpose), current with the blocks `feed` delivers."""

    def __init__(
        self,
        feed: BlockFeed | None,
        *,
        kept_lists: int = KEPT_LISTS,
        barrier_s: float = BARRIER_S,
    ) -> None:
        self._feed = feed
        self.kept_lists, self.barrier_s = kept_lists, barrier_s
        self._cond = threading.Condition()
        self._live = False  # the feed delivers blocks: only then is anything kept
        self._applied = 0  # every block up to this height is in the kept lists
        self._written = 0  # the highest block a status change of this process was in
        self._kept: OrderedDict[ListKey, _Kept] = OrderedDict()
        self._building: dict[ListKey, _Building] = {}
        if feed is not None:
            feed.listen(self)

    def wrote(self, height: int) -> None:
        """A status change of this process committed at `height`: later requests see it."""
        with self._cond:
            self._written = max(self._written, height)

    def document(
        self,
        key: ListKey,
        *,
        height: int,
        kid: str | None,
        build: Callable[[], Built],
        publish: Callable[[StatusList], Document],
    ) -> Document:
        """The list's document as of the chain's `height` at least: the one kept while its
        bits and signing key (`kid`) are unchanged, else `publish`ed from its current bits
        (`build` reads them from the chain when they are not kept)."""
        kept = self._current(key, height, build)
        with self._cond:
            if kept.published is not None and kept.published[:2] == (kept.version, kid):
                return kept.published[2]
            version, bits = kept.version, StatusList(raw=kept.bits.to_bytes())
        published = publish(bits)
        with self._cond:
            if kept.version == version:
                kept.published = (version, kid, published)
        return published

    def _current(self, key: ListKey, height: int, build: Callable[[], Built]) -> _Kept:
        """The list's bits with every block up to `height`: kept, or built (and kept)."""
        # A feed started just now is waited for (it is up in milliseconds); one down is not
        fresh = self._feed is not None and self._feed.start()
        with self._cond:
            target = max(height, self._written)
        while True:
            with self._cond:
                reached = self._cond.wait_for(
                    lambda: self._applied >= target if self._live else not fresh,
                    timeout=self.barrier_s,
                )
                if not (reached and self._live):
                    building = None  # no feed, or behind: build for this request alone
                    break
                kept = self._kept.get(key)
                if kept is not None:
                    self._kept.move_to_end(key)
                    return kept
                building = self._building.get(key)
                if building is None:
                    building = self._building[key] = _Building()
                    break
            building.done.wait()  # another request builds it: then look again
        return self._build(key, building, build)

    def _build(self, key: ListKey, building: _Building | None, build: Callable[[], Built]) -> _Kept:
        try:
            built = build()
        except BaseException:
            if building is not None:
                self._built(key, building, None)
            raise
        kept = _Kept(built.bits)
        if building is not None:
            self._built(key, building, kept if built.keep else None)
        return kept

    def _built(self, key: ListKey, building: _Building, kept: _Kept | None) -> None:
        """The end of a build: its list kept (when it may be), and those waiting for it woken."""
        with self._cond:
            del self._building[key]
            if kept is not None:
                # Changes in blocks delivered while reading: replayed in order, the last one wins
                for index, value in building.changes:
                    kept.bits.set(index, value)
                if building.valid and self._live:
                    self._kept[key] = kept
                    while len(self._kept) > self.kept_lists:
                        self._kept.popitem(last=False)
        building.done.set()

    # -- the feed's thread -----------------------------------------------------------------------

    def on_block(self, block: Block) -> None:
        height = block.get("height")
        if not isinstance(height, int):
            return
        with self._cond:
            if not self._live:  # nothing is kept yet: the state reads see includes this block
                self._live, self._applied = True, height
            elif height > self._applied:
                if height != self._applied + 1:  # a block missed: what is kept may be stale
                    missed = (self._applied + 1, height - 1)
                    log.warning("blocks %d-%d missed: the status lists are built again", *missed)
                    self._drop()
                self._apply(block)
                self._applied = height
            self._cond.notify_all()

    def on_break(self) -> None:
        with self._cond:
            self._live = False
            self._drop()
            self._cond.notify_all()

    def _apply(self, block: Block) -> None:
        for event in block.get("events") or ():
            change = status_change(event)
            if change is None:
                continue
            key, index, value = change
            kept = self._kept.get(key)
            if kept is not None and kept.bits.get(index) != value:
                kept.bits.set(index, value)
                kept.version += 1
            building = self._building.get(key)
            if building is not None:
                building.changes.append((index, value))

    def _drop(self) -> None:
        self._kept.clear()
        for building in self._building.values():
            building.valid = False


def status_change(event: Any) -> tuple[ListKey, int, int] | None:
    """The entry an identity `status_changed` event set, and its value; None for other events."""
    if not isinstance(event, dict):
        return None
    if event.get("contract") != c.NAMESPACE or event.get("name") != "status_changed":
        return None
    data = event["data"]
    # A malformed change raises (the feed starts afresh): skipped, it would leave a bit stale
    key = ListKey(str(data["org"]), int(data["list"]), str(data["purpose"]))
    return key, int(data["index"]), int(data["value"])
