"""The device registry as the gateway sees it: on-chain records behind a cache that follows
the chain's device events."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from iot_gateway.validate import Device

log = logging.getLogger(__name__)
REGISTRY_NAMESPACE = "roadhealth"
# The road-health contract's only writes of a device record, each naming the device
DEVICE_EVENTS = frozenset({"device_registered", "device_suspended", "device_reinstated"})
# Committed blocks with their contract events from a height (None: from the next one on)
Watch = Callable[[int | None], Iterator[dict[str, Any]]]


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
    takes effect within ttl_s. Unknown devices are cached too, so a flood of messages from an
    unregistered id costs one chain read per ttl_s. An answer older than half its ttl is
    still used while a background thread reads it again, so a busy gateway's checks never wait
    for the chain (a read with its proof takes tens of milliseconds).
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
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._watched_ttl_s = watched_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Device | None]] = {}
        # Bumped when the chain changes a device: a read begun before is not cached
        self._epochs: dict[str, int] = {}
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

    def lookup(self, device: str) -> Device | None:
        """The device's current record (at most ttl_s old, or as the event stream left it)."""
        now = self._clock()
        ttl = self._watched_ttl_s if self.following.is_set() else self._ttl_s
        with self._lock:
            hit = self._cache.get(device)
        if hit is not None:
            age = now - hit[0]
            if age < ttl / 2:
                return hit[1]
            if age < ttl:
                self._refresh_later(device)
                return hit[1]
        return self._read_now(device)

    def _read_now(self, device: str) -> Device | None:
        now = self._clock()
        with self._lock:
            epoch = self._epochs.get(device, 0)
        found = parse_device(device, self._read(REGISTRY_NAMESPACE, device_key(device)))
        with self._lock:
            if self._epochs.get(device, 0) == epoch:
                self._cache[device] = (now, found)
        return found

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
                for device in self._cache:
                    self._epochs[device] = self._epochs.get(device, 0) + 1
                self._cache.clear()
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
                self._epochs[device] = self._epochs.get(device, 0) + 1
                self._cache.pop(device, None)
            try:
                self._read_now(device)
            except Exception as exc:  # the next lookup reads it
                log.warning("registry read of changed device %s failed: %s", device, exc)
        self._next_height = message["height"] + 1
        self.following.set()

    def _refresh_later(self, device: str) -> None:
        with self._lock:
            if device in self._queued:
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
