"""The device registry as the gateway sees it: on-chain records behind a short-lived cache."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from iot_gateway.validate import Device

log = logging.getLogger(__name__)
REGISTRY_NAMESPACE = "roadhealth"


def device_key(device: str) -> str:
    """State key of a device's record in the road-health contract."""
    return f"device:{device}"


def parse_device(device: str, record: Any) -> Device | None:
    """A Device from its on-chain record, or None when there is none (or it is unusable)."""
    if not isinstance(record, dict) or not isinstance(record.get("pub_key"), str):
        return None
    return Device(device=device, pub_key=record["pub_key"], active=record.get("status") == "active")


class DeviceRegistry:
    """Reads `roadhealth/device:<id>` through the ledger port, caching answers for ttl_s.

    A suspension takes effect within ttl_s; unknown devices are cached too, so a flood of
    messages from an unregistered id costs one chain read per ttl_s. An answer older than
    half the ttl is still used while a background thread reads it again, so a busy gateway's
    checks never wait for the chain (a read with its proof takes tens of milliseconds).
    """

    def __init__(
        self,
        read: Callable[[str, str], Any],
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Device | None]] = {}
        self._lock = threading.Lock()
        self._stale: queue.Queue[str] = queue.Queue()
        self._queued: set[str] = set()
        self._refresher: threading.Thread | None = None

    def lookup(self, device: str) -> Device | None:
        """The device's current record (at most ttl_s old)."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(device)
        if hit is not None:
            age = now - hit[0]
            if age < self._ttl_s / 2:
                return hit[1]
            if age < self._ttl_s:
                self._refresh_later(device)
                return hit[1]
        return self._read_now(device)

    def _read_now(self, device: str) -> Device | None:
        now = self._clock()
        found = parse_device(device, self._read(REGISTRY_NAMESPACE, device_key(device)))
        with self._lock:
            self._cache[device] = (now, found)
        return found

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
