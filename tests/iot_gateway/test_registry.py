"""The device registry cache: answers at most ttl old, refreshed in the background when busy."""

from __future__ import annotations

import time
from typing import Any

from iot_gateway.registry import DeviceRegistry


class Chain:
    """Device records as the roadhealth contract holds them, counting reads."""

    def __init__(self) -> None:
        self.records: dict[str, Any] = {}
        self.reads = 0

    def read(self, namespace: str, key: str) -> Any:
        assert namespace == "roadhealth"
        self.reads += 1
        return self.records.get(key)


def test_a_suspension_is_seen_within_the_ttl_without_the_lookup_waiting_for_the_chain() -> None:
    chain, now = Chain(), [0.0]
    chain.records["device:d1"] = {"pub_key": "ab" * 32, "status": "active"}
    registry = DeviceRegistry(chain.read, ttl_s=5.0, clock=lambda: now[0])
    first = registry.lookup("d1")
    assert first is not None and first.active
    chain.records["device:d1"] = {"pub_key": "ab" * 32, "status": "suspended"}
    now[0] = 1.0
    assert registry.lookup("d1") == first and chain.reads == 1  # fresh: no read
    now[0] = 3.0
    # Past half the ttl: the cached answer still serves while a background read runs
    stale = registry.lookup("d1")
    assert stale is not None and stale.active
    deadline = time.monotonic() + 5
    while (seen := registry.lookup("d1")) is not None and seen.active:
        assert time.monotonic() < deadline, "the background refresh never came"
        time.sleep(0.01)
    assert seen is not None and not seen.active and chain.reads == 2


def test_an_answer_older_than_the_ttl_is_read_again_before_use() -> None:
    chain, now = Chain(), [0.0]
    registry = DeviceRegistry(chain.read, ttl_s=5.0, clock=lambda: now[0])
    assert registry.lookup("ghost") is None  # unknown devices are cached too
    assert registry.lookup("ghost") is None and chain.reads == 1
    chain.records["device:ghost"] = {"pub_key": "cd" * 32, "status": "active"}
    now[0] = 6.0
    found = registry.lookup("ghost")
    assert found is not None and found.active and chain.reads == 2
