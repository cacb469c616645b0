"""The device records ingestion checks, kept while the chain's event stream says they hold.

A batch checks each of its devices' records (registered, active, key, vehicle class). From a
node over HTTP that is a request per device and batch: most of what a message cost when a batch
holds a second of a fleet. So a record read is kept, and dropped as soon as a committed block
registers, suspends or reinstates its device: a lookup answers as the chain's state after the
newest block the stream delivered (a suspension takes effect within the stream's delay, as for
the gateway). Without a stream (an embedded chain, whose reads cost nothing) and whenever the
stream is down, every lookup reads the chain, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

CONTRACT = "roadhealth"
# The road-health contract's only writes of a device record, each naming the device
DEVICE_EVENTS = frozenset({"device_registered", "device_suspended", "device_reinstated"})

Record = dict[str, Any] | None
# Committed blocks with their contract events, from a height (None: from the next one on)
Watch = Callable[[int | None], Iterator[dict[str, Any]]]


class DeviceRecords:
    """Device records read through `read`, kept while `watch`'s blocks leave them unchanged."""

    def __init__(self, read: Callable[[str], Record]) -> None:
        self._read = read
        self._kept: dict[str, Record] = {}
        # Bumped when a device changes or the stream breaks: a read begun before is not kept
        self._epochs: dict[str, int] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self.following = threading.Event()  # set while the stream delivers blocks
        self._stopping = threading.Event()

    def get(self, device: str) -> Record:
        """The device's record as the chain holds it (None: not registered)."""
        with self._lock:
            if self.following.is_set() and device in self._kept:
                return self._kept[device]
            epoch, generation = self._epochs.get(device, 0), self._generation
        record = self._read(device)
        with self._lock:
            unchanged = self._epochs.get(device, 0) == epoch and self._generation == generation
            if self.following.is_set() and unchanged:
                self._kept[device] = record
        return record

    def forget(self, device: str) -> None:
        """Drop a record this process knows changed (a transaction it relayed)."""
        with self._lock:
            self._epochs[device] = self._epochs.get(device, 0) + 1
            self._kept.pop(device, None)

    def follow(self, watch: Watch) -> None:
        """Keep records from now on, following `watch` in a background thread."""
        threading.Thread(
            target=self._follow, args=(watch,), name="roadhealth-devices", daemon=True
        ).start()

    def stop(self) -> None:
        self._stopping.set()

    def apply(self, block: dict[str, Any]) -> None:
        """Drop the records a committed block changed; the others still hold after it."""
        for event in block.get("events", ()):
            data = event.get("data") if isinstance(event, dict) else None
            if (
                event.get("contract") == CONTRACT
                and event.get("name") in DEVICE_EVENTS
                and isinstance(data, dict)
            ):
                self.forget(str(data.get("device")))
        self.following.set()

    def _follow(self, watch: Watch) -> None:
        """Apply blocks in order; after a break, resume after the last one applied (the node
        replays what was missed) while lookups read the chain."""
        height: int | None = None
        delay_s = 0.5
        while not self._stopping.is_set():
            try:
                for block in watch(height):
                    if block.get("type") != "block" or not isinstance(block.get("height"), int):
                        continue
                    self.apply(block)
                    height, delay_s = block["height"] + 1, 0.5
                    if self._stopping.is_set():
                        break
            except Exception as exc:  # the chain client's errors, a dropped connection
                log.warning("device event stream interrupted (%s); retrying in %.1fs", exc, delay_s)
            with self._lock:
                self.following.clear()
                self._kept.clear()
                self._generation += 1
            self._stopping.wait(delay_s)
            delay_s = min(delay_s * 2, 10.0)
