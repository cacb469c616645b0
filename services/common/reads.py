"""Reads of a chain record that a change of the record may overtake: a cache of records keeps a
read's answer only if nothing changed the record while the read ran."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

V = TypeVar("V")


class ReadsInFlight:
    """Per key, the reads running and the changes seen since the first of them began; and a
    generation, bumped when everything cached may be stale (an event stream broke).

    An entry lives only while reads of its key run, so this stays a handful however many keys
    are ever read (per-key epochs kept for good grew with every key ever changed). Not locked:
    its owner calls it under the lock that guards its cache."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[int, int]] = {}  # key -> (changes since, reads running)
        self.generation = 0

    def begin(self, key: str) -> tuple[int, int]:
        """Start a read of `key`; what `end` must give back for its answer to be kept."""
        changes, readers = self._running.get(key, (0, 0))
        self._running[key] = (changes, readers + 1)
        return changes, self.generation

    def end(self, key: str) -> tuple[int, int]:
        """End a read of `key` begun with `begin` (whether it answered or failed); compare with
        what `begin` gave: equal, nothing overtook it."""
        changes, readers = self._running[key]
        if readers == 1:
            del self._running[key]
        else:
            self._running[key] = (changes, readers - 1)
        return changes, self.generation

    def changed(self, key: str) -> None:
        """The record of `key` changed: a read of it running now is not kept."""
        if key in self._running:
            changes, readers = self._running[key]
            self._running[key] = (changes + 1, readers)

    def reset(self) -> None:
        """Everything may be stale: no read running now is kept."""
        self.generation += 1


def keep_recent(kept: OrderedDict[str, V], key: str, value: V, capacity: int) -> None:
    """Keep `key`'s value as the most recently used; past `capacity` the least recently used
    goes (popitem from an OrderedDict's front is O(1); a plain dict emptied from the front
    skips every slot it already emptied, until it resizes)."""
    kept[key] = value
    kept.move_to_end(key)
    if len(kept) > capacity:
        kept.popitem(last=False)
