"""The device registry as the gateway sees it: on-chain records behind a cache that follows
the chain's device events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from iot_gateway.validate import Device
from services.common.reads import ReadsInFlight, keep_recent

log = logging.getLogger(__name__)
REGISTRY_NAMESPACE = "roadhealth"
# The road-health contract's only writes of a device record, each naming the device
DEVICE_EVENTS = frozenset({"device_registered", "device_suspended", "device_reinstated"})
# Committed blocks with their contract events from a height (None: from the next one on)
Watch = Callable[[int | None], Iterator[dict[str, Any]]]
# Registered devices kept (GatewaySettings.registry_capacity): twice a large city's fleet, at
# about 200 bytes each. Past it the least recently seen is read again when it next publishes
DEFAULT_CAPACITY = 20_000
# Ids the chain did not know, kept apart so that no flood of junk ids pushes a registered
# device out, and for at most DEFAULT_UNKNOWN_TTL_S (a registration event drops one at once)
DEFAULT_UNKNOWN_CAPACITY = 2_048
DEFAULT_UNKNOWN_TTL_S = 60.0


def device_key(device: str) -> str:
    """State key of a device's record in the road-health contract."""
    return f"device:{device}"


def parse_device(device: str, record: Any) -> Device | None:
    """A Device from its on-chain record, or None when there is none (or it is unusable)."""
    if not isinstance(record, dict) or not isinstance(record.get("pub_key"), str):
        return None
    return Device(device=device, pub_key=record["pub_key"], active=record.get("status") == "active")


class DeviceRegistry:
    """Reads `roadhealth/device:<id>` through the ledger port and caches the answers.

    With a `watch` (the chain's event stream), the cache follows the chain: a block with a
    device's registration, suspension or reinstatement makes the registry read that device
    again at once, so an answer stays good until the chain changes it (`watched_ttl_s` is only
    a safety net), and a fleet of thousands of devices costs no reads while nothing changes.
    Whenever the stream is down, and without one, answers are kept for ttl_s: a suspension
    takes effect within ttl_s. An answer older than half its ttl is still used while a
    background thread reads it again, so a busy gateway's checks never wait for the chain (a
    read with its proof takes tens of milliseconds).

    Memory is bounded whatever is published: at most `capacity` registered devices are kept
    (least recently seen dropped first), and ids the chain does not know go to a separate
    cache of `unknown_capacity` for at most `unknown_ttl_s` (and ttl_s while the stream is
    down), so a flood of junk ids costs one chain read per id per that ttl and never evicts a
    registered device. An unknown id registered later is accepted when its registration event
    arrives, or once its answer expires.
    """

    def __init__(
        self,
        read: Callable[[str, str], Any],
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        watch: Watch | None = None,
        height: Callable[[], int] | None = None,
        watched_ttl_s: float = 300.0,
        capacity: int = DEFAULT_CAPACITY,
        unknown_capacity: int = DEFAULT_UNKNOWN_CAPACITY,
        unknown_ttl_s: float = DEFAULT_UNKNOWN_TTL_S,
    ) -> None:
        # Verify the bounds: a cache of nothing would read the chain for every message
        if capacity < 1 or unknown_capacity < 1:
            raise ValueError(
                f"registry capacities must be at least 1, got {capacity} and {unknown_capacity}"
            )
        if not unknown_ttl_s > 0:
            raise ValueError(f"unknown_ttl_s must be more than 0 seconds, got {unknown_ttl_s}")
        self._read = read
        self._ttl_s = ttl_s
        self._watched_ttl_s = watched_ttl_s
        self._unknown_ttl_s = unknown_ttl_s
        self._capacity = capacity
        self._unknown_capacity = unknown_capacity
        self._clock = clock
        self._known: OrderedDict[str, tuple[float, Device]] = OrderedDict()  # when read, what
        self._unknown: OrderedDict[str, float] = OrderedDict()  # when the chain had no record
        # Reads in flight per device: (changes to it since, how many). A read that a change of
        # its device, or a reset of the whole cache (generation), overtook is not cached. An
        # entry lives only while reads of its device are in flight, so these stay a handful
        self._reads = ReadsInFlight()
        self._lock = threading.Lock()
        self._stale: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()
        self._refresher: threading.Thread | None = None
        self._watch = watch
        self._height = height
        self._next_height: int | None = None
        self.following = threading.Event()  # set while the event stream is live
        self._stopping = threading.Event()

    def start(self) -> None:
        """Follow the chain's device events in a background thread (when given a watch),
        from the block after the chain's height now: every read made from here on is of a
        state at least that high, so the stream shows whatever changes it later."""
        if self._watch is None:
            return
        if self._height is not None:
            try:
                self._next_height = self._height() + 1
            except Exception as exc:  # the chain is not reachable yet: start from the next block
                log.warning("chain height unknown (%s); following from the next block", exc)
        threading.Thread(target=self._follow, name="gateway-registry-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def cached(self) -> tuple[int, int]:
        """How many registered devices and how many unknown ids the cache holds now."""
        with self._lock:
            return len(self._known), len(self._unknown)

    def lookup(self, device: str) -> Device | None:
        """The device's current record (at most ttl_s old, or as the event stream left it)."""
        now = self._clock()
        ttl = self._watched_ttl_s if self.following.is_set() else self._ttl_s
        with self._lock:
            hit = self._hit(device, ttl)
        if hit is not None:
            found, read_at, ttl = hit
            age = now - read_at
            if age < ttl / 2:
                return found
            if age < ttl:
                self._refresh_later(device)
                return found
        return self._read_now(device)

    def _hit(self, device: str, ttl: float) -> tuple[Device | None, float, float] | None:
        """The cached answer, when it was read and how long it holds; now the most recently
        used. Called with the lock held."""
        known = self._known.get(device)
        if known is not None:
            self._known.move_to_end(device)
            return known[1], known[0], ttl
        read_at = self._unknown.get(device)
        if read_at is None:
            return None
        self._unknown.move_to_end(device)
        return None, read_at, min(ttl, self._unknown_ttl_s)

    def _read_now(self, device: str) -> Device | None:
        now = self._clock()
        with self._lock:
            began = self._reads.begin(device)
        try:
            found = parse_device(device, self._read(REGISTRY_NAMESPACE, device_key(device)))
        except BaseException:
            with self._lock:
                self._reads.end(device)
            raise
        with self._lock:
            if self._reads.end(device) == began:
                self._keep(device, now, found)
        return found

    def _keep(self, device: str, now: float, found: Device | None) -> None:
        """Cache an answer read at `now`. Called with the lock held."""
        if found is None:
            self._known.pop(device, None)
            keep_recent(self._unknown, device, now, self._unknown_capacity)
        else:
            self._unknown.pop(device, None)
            keep_recent(self._known, device, (now, found), self._capacity)

    def _forget(self, device: str) -> None:
        """Drop a device the chain changed; a read of it in flight is not cached. Called with
        the lock held."""
        self._known.pop(device, None)
        self._unknown.pop(device, None)
        self._reads.changed(device)

    # --- following the chain ------------------------------------------------------------

    def _follow(self) -> None:
        """Apply the stream's blocks in order; on a break, resume after the last one applied
        (the node replays what was missed), meanwhile falling back to the ttl."""
        assert self._watch is not None
        delay = 0.5
        while not self._stopping.is_set():
            try:
                for message in self._watch(self._next_height):
                    self.apply_block(message)
                    delay = 0.5
                    if self._stopping.is_set():
                        return
            except Exception as exc:  # the chain's client errors, a dropped connection
                log.warning("device event stream interrupted (%s); retrying in %.1fs", exc, delay)
            self.following.clear()
            self._stopping.wait(delay)
            delay = min(delay * 2, 10.0)

    def apply_block(self, message: dict[str, Any]) -> None:
        """Read again every device a committed block changed; the cache is then current."""
        if message.get("type") != "block" or not isinstance(message.get("height"), int):
            return
        if self._next_height is None:
            # The first block of a stream begun at an unknown height: what was cached before
            # may predate a change the stream will never show, so it is read again when needed
            with self._lock:
                self._known.clear()
                self._unknown.clear()
                self._reads.reset()
        changed = {
            str(e["data"]["device"])
            for e in message.get("events", ())
            if isinstance(e, dict)
            and e.get("contract") == REGISTRY_NAMESPACE
            and e.get("name") in DEVICE_EVENTS
            and isinstance(e.get("data"), dict)
            and "device" in e["data"]
        }
        for device in changed:
            with self._lock:
                self._forget(device)
            try:
                self._read_now(device)
            except Exception as exc:  # the next lookup reads it
                log.warning("registry read of changed device %s failed: %s", device, exc)
        self._next_height = message["height"] + 1
        self.following.set()

    def _refresh_later(self, device: str) -> None:
        with self._lock:
            # One queued read per device, and no more than the caches hold: a slow chain must
            # not grow the queue (past the ttl, a lookup reads the device itself)
            if (
                device in self._queued
                or len(self._queued) >= self._capacity + self._unknown_capacity
            ):
                return
            self._queued.add(device)
            if self._refresher is None or not self._refresher.is_alive():
                self._refresher = threading.Thread(
                    target=self._refresh_loop, name="gateway-registry", daemon=True
                )
                self._refresher.start()
            # Queued under the lock, so a refresher deciding to end cannot miss it
            self._stale.put(device)

    def _refresh_loop(self) -> None:
        """Re-read queued devices; end after a second with nothing to do."""
        while True:
            try:
                device = self._stale.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    if self._stale.empty():
                        self._refresher = None
                        return
                continue
            try:
                self._read_now(device)
            except Exception as exc:  # the next lookup past the ttl reads it synchronously
                log.warning("registry refresh of %s failed: %s", device, exc)
            finally:
                with self._lock:
                    self._queued.discard(device)
