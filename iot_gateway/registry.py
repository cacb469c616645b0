"""The device registry as the gateway sees it: on-chain records behind a short-lived cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from iot_gateway.validate import Device

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
    messages from an unregistered id costs one chain read per ttl_s.
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

    def lookup(self, device: str) -> Device | None:
        """The device's current record (at most ttl_s old)."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(device)
        if hit is not None and now - hit[0] < self._ttl_s:
            return hit[1]
        found = parse_device(device, self._read(REGISTRY_NAMESPACE, device_key(device)))
        with self._lock:
            self._cache[device] = (now, found)
        return found
