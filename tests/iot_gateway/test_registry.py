"""The device registry cache: answers at most ttl old, refreshed in the background when busy,
or kept current by the chain's device events."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
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


class Stream:
    """The chain's event stream as the registry's watch sees it: blocks pushed by the test,
    a break on request, and the heights each (re)connection asked to start from."""

    def __init__(self) -> None:
        self.blocks: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.asked: list[int | None] = []

    def __call__(self, from_height: int | None) -> Iterator[dict[str, Any]]:
        self.asked.append(from_height)
        while (block := self.blocks.get()) is not None:
            yield block
        raise ConnectionError("stream broken")

    def block(self, height: int, *events: tuple[str, str]) -> None:
        self.blocks.put(
            {
                "type": "block",
                "height": height,
                "events": [
                    {"contract": "roadhealth", "name": name, "data": {"device": device}}
                    for name, device in events
                ],
            }
        )


def _until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_following_the_chain_a_change_is_seen_at_once_and_nothing_else_is_read_again() -> None:
    chain, now, stream = Chain(), [0.0], Stream()
    chain.records["device:d1"] = {"pub_key": "ab" * 32, "status": "active"}
    chain.records["device:d2"] = {"pub_key": "cd" * 32, "status": "active"}
    registry = DeviceRegistry(chain.read, ttl_s=5.0, clock=lambda: now[0], watch=stream)
    registry.start()
    stream.block(7)  # a block with no device change: the registry now follows the chain
    _until(registry.following.is_set, "the registry to follow the stream")
    assert registry.lookup("d1") is not None and registry.lookup("d2") is not None
    reads = chain.reads
    now[0] = 60.0  # far past ttl_s: while following, answers stand until the chain changes
    assert registry.lookup("d1") is not None and chain.reads == reads
    chain.records["device:d1"] = {"pub_key": "ab" * 32, "status": "suspended"}
    stream.block(8, ("device_suspended", "d1"), ("anchored", "d2"))
    _until(lambda: not registry.lookup("d1").active, "the suspension")  # type: ignore[union-attr]
    assert chain.reads == reads + 1  # d1 read once more; d2 and the unrelated event cost nothing
    registry.stop()


def test_a_broken_stream_falls_back_to_the_ttl_and_resumes_after_the_last_block() -> None:
    chain, now, stream = Chain(), [0.0], Stream()
    chain.records["device:d1"] = {"pub_key": "ab" * 32, "status": "active"}
    registry = DeviceRegistry(chain.read, ttl_s=5.0, clock=lambda: now[0], watch=stream)
    registry.start()
    stream.block(3)
    _until(registry.following.is_set, "the registry to follow the stream")
    assert registry.lookup("d1") is not None
    stream.blocks.put(None)  # the connection breaks
    _until(lambda: not registry.following.is_set(), "the registry to notice the break")
    now[0] = 6.0  # without the stream, an answer older than ttl_s is read again before use
    reads = chain.reads
    assert registry.lookup("d1") is not None and chain.reads == reads + 1
    _until(lambda: len(stream.asked) == 2, "the registry to reconnect")
    assert stream.asked == [None, 4]  # from the block after the last one applied
    registry.stop()
    stream.blocks.put(None)


def test_started_at_a_known_height_the_registry_keeps_what_it_read_and_asks_from_the_next() -> None:
    chain, stream = Chain(), Stream()
    chain.records["device:d1"] = {"pub_key": "ab" * 32, "status": "active"}
    registry = DeviceRegistry(chain.read, watch=stream, height=lambda: 41)
    registry.start()
    assert registry.lookup("d1") is not None and chain.reads == 1
    stream.block(42)
    _until(registry.following.is_set, "the registry to follow the stream")
    # reads after start are of a state at height 41 or later: the stream shows any change
    assert registry.lookup("d1") is not None and chain.reads == 1
    assert stream.asked == [42]
    registry.stop()
    stream.blocks.put(None)
