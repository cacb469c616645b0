"""The device records ingestion checks, kept while the chain's event stream says they hold.

A batch checks each of its devices' records (registered, active, key, vehicle class). From a
node over HTTP that is a request per device and batch: most of what a message cost when a batch
holds a second of a fleet. So a record read is kept, and dropped as soon as a committed block
registers, suspends or reinstates its device: a lookup answers as the chain's state after the
newest block the stream delivered (a suspension takes effect within the stream's delay, as for
the gateway). Without a stream (an embedded chain, whose reads cost nothing) and whenever the
stream is down, every lookup reads the chain, as before.

What is kept is bounded whatever callers send: at most `capacity` registered devices' records
(the least recently used dropped first) and, apart from them so that no run of unknown ids
evicts a registered device, at most `unknown_capacity` ids the chain had no record of. Either
kind is dropped by its device's next event (a registration among them), so neither needs a ttl.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from services.common.reads import ReadsInFlight, keep_recent

log = logging.getLogger(__name__)

CONTRACT = "roadhealth"
# The road-health contract's only writes of a device record, each naming the device
DEVICE_EVENTS = frozenset({"device_registered", "device_suspended", "device_reinstated"})

Record = dict[str, Any] | None
# Committed blocks with their contract events, from a height (None: from the next one on)
Watch = Callable[[int | None], Iterator[dict[str, Any]]]
# Registered devices' records kept (Settings.device_records_kept): twice a large city's fleet
DEFAULT_CAPACITY = 20_000
# Ids the chain had no record of, kept apart
DEFAULT_UNKNOWN_CAPACITY = 2_048


class DeviceRecords:
    """Device records read through `read`, kept while `watch`'s blocks leave them unchanged."""

    def __init__(
        self,
        read: Callable[[str], Record],
        *,
        capacity: int = DEFAULT_CAPACITY,
        unknown_capacity: int = DEFAULT_UNKNOWN_CAPACITY,
    ) -> None:
        # Verify the bounds (a cache of nothing would read the chain for every batch's device)
        if capacity < 1 or unknown_capacity < 1:
            raise ValueError(
                f"device record capacities must be at least 1, got {capacity}"
                f" and {unknown_capacity}"
            )
        self._read = read
        self._capacity = capacity
        self._unknown_capacity = unknown_capacity
        self._kept: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._unknown: OrderedDict[str, None] = OrderedDict()
        # A read that a change of its device, or a break of the stream, overtook is not kept
        self._reads = ReadsInFlight()
        self._lock = threading.Lock()
        self.following = threading.Event()  # set while the stream delivers blocks
        self._stopping = threading.Event()

    def get(self, device: str) -> Record:
        """The device's record as the chain holds it (None: not registered)."""
        with self._lock:
            if self.following.is_set():
                if device in self._kept:
                    self._kept.move_to_end(device)
                    return self._kept[device]
                if device in self._unknown:
                    self._unknown.move_to_end(device)
                    return None
            began = self._reads.begin(device)
        try:
            record = self._read(device)
        except BaseException:
            with self._lock:
                self._reads.end(device)
            raise
        with self._lock:
            unchanged = self._reads.end(device) == began
            if self.following.is_set() and unchanged:
                self._keep(device, record)
        return record

    def kept(self) -> tuple[int, int]:
        """How many registered devices' records and how many unknown ids are kept now."""
        with self._lock:
            return len(self._kept), len(self._unknown)

    def forget(self, device: str) -> None:
        """Drop a record this process knows changed (a transaction it relayed)."""
        with self._lock:
            self._kept.pop(device, None)
            self._unknown.pop(device, None)
            self._reads.changed(device)

    def _keep(self, device: str, record: Record) -> None:
        """Keep a record as the most recently used of its kind (the least recently used of
        that kind dropped past its bound). Lock held."""
        if record is None:
            self._kept.pop(device, None)
            keep_recent(self._unknown, device, None, self._unknown_capacity)
        else:
            self._unknown.pop(device, None)
            keep_recent(self._kept, device, record, self._capacity)

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
                self._unknown.clear()
                self._reads.reset()
            self._stopping.wait(delay_s)
            delay_s = min(delay_s * 2, 10.0)
