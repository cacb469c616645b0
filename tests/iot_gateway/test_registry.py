"""The device registry cache: answers at most ttl old, refreshed in the background when busy,
or kept current by the chain's device events; bounded whatever is published."""

from __future__ import annotations

import queue
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.crypto import SigningKey
from iot_gateway.checkpool import check_jobs, job_for
from iot_gateway.forwarder import ForwardSettings
from iot_gateway.gateway import GatewaySettings
from iot_gateway.outbox import Incoming
from iot_gateway.registry import DeviceRegistry
from iot_gateway.simulator import Fleet, build_network
from iot_gateway.simulator.messages import Outgoing
from iot_gateway.validate import Limits
from tests._device_events import device_block


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


# --- bounds: what anyone who can publish may make the registry hold ---------------------------

FLEET_SIZE = 6
DEVICE_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)


@pytest.fixture(scope="module")
def fleet() -> dict[str, Outgoing]:
    """One signed message from each device of a small fleet, by device id."""
    network = build_network(city="reg", n_devices=FLEET_SIZE, n_segments=1, seed=5)
    sim = Fleet(network, seed=6)
    messages = [sim.next_message(time.time()) for _ in network.devices]
    by_device = {m.device: m for m in messages}
    assert len(by_device) == FLEET_SIZE
    return by_device


def _registered(fleet: dict[str, Outgoing]) -> Chain:
    chain = Chain()
    network = build_network(city="reg", n_devices=FLEET_SIZE, n_segments=1, seed=5)
    for device in network.devices:
        assert device.id in fleet
        chain.records[f"device:{device.id}"] = {
            "pub_key": device.key.public_hex,
            "status": "active",
        }
    return chain


def _verdict(registry: DeviceRegistry, message: Outgoing) -> str:
    """'stored', or the reason the gateway dead-letters the message with."""
    job = job_for(message.topic, message.payload, registry.lookup)
    [outcome] = check_jobs([job], time.time(), Limits(), {})
    return "stored" if isinstance(outcome, Incoming) else outcome[0]


def _sent_by(message: Outgoing, device: str) -> Outgoing:
    """The message as `device` would publish it: its topic and payload name that device."""
    payload = {**orjson.loads(message.payload), "device": device}
    topic = message.topic.replace(f"/sensor/{message.device}/", f"/sensor/{device}/")
    return Outgoing(topic, orjson.dumps(payload), device, None)


def _following(registry: DeviceRegistry) -> DeviceRegistry:
    """The registry as it is once its event stream delivered a block (applied here, in the
    test's thread, so nothing runs behind the test's back)."""
    registry.apply_block(device_block(1))
    assert registry.following.is_set()
    return registry


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.lists(DEVICE_ID.filter(lambda d: not d.startswith("veh-")), unique=True, max_size=80)
)
def test_a_flood_of_unknown_ids_stays_within_the_bounds_and_each_is_refused(
    fleet: dict[str, Outgoing], junk: list[str]
) -> None:
    chain = _registered(fleet)
    registry = DeviceRegistry(
        chain.read, clock=lambda: 0.0, capacity=FLEET_SIZE, unknown_capacity=8
    )
    assert all(_verdict(registry, m) == "stored" for m in fleet.values())
    template, reads = next(iter(fleet.values())), chain.reads
    verdicts = {_verdict(registry, _sent_by(template, device)) for device in junk}
    assert verdicts <= {"unknown_device"}
    assert registry.cached() == (FLEET_SIZE, min(len(junk), 8))
    assert chain.reads == reads + len(junk)  # one read per junk id
    # Within the ttl an id seen again costs nothing (while the negative cache still holds it)
    recent = junk[-8:]
    assert {_verdict(registry, _sent_by(template, device)) for device in recent} <= {
        "unknown_device"
    }
    assert chain.reads == reads + len(junk)
    # The flood pushed no registered device out: the fleet is still answered without a read
    assert all(_verdict(registry, m) == "stored" for m in fleet.values())
    assert chain.reads == reads + len(junk)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=st.lists(st.integers(0, FLEET_SIZE - 1), max_size=40))
def test_a_registered_device_past_the_capacity_is_read_again_and_accepted(
    fleet: dict[str, Outgoing], order: list[int]
) -> None:
    chain, capacity = _registered(fleet), 3
    registry = DeviceRegistry(chain.read, clock=lambda: 0.0, capacity=capacity)
    devices = sorted(fleet)
    recent: OrderedDict[str, None] = OrderedDict()  # the least recently seen first
    for i in order:
        device, reads = devices[i], chain.reads
        assert _verdict(registry, fleet[device]) == "stored"
        # Read again exactly when the capacity pushed it out since it was last seen
        assert chain.reads == reads + (device not in recent)
        recent[device] = None
        recent.move_to_end(device)
        if len(recent) > capacity:
            recent.popitem(last=False)
    assert registry.cached() == (len(recent), 0)


def test_an_id_registered_after_it_was_unknown_is_accepted_when_its_registration_arrives(
    fleet: dict[str, Outgoing],
) -> None:
    device, message = next(iter(fleet.items()))
    chain, records = Chain(), _registered(fleet).records
    registry = _following(DeviceRegistry(chain.read, clock=lambda: 0.0))
    assert _verdict(registry, message) == "unknown_device"
    chain.records[f"device:{device}"] = records[f"device:{device}"]
    assert _verdict(registry, message) == "unknown_device" and chain.reads == 1  # kept
    registry.apply_block(device_block(2, ("device_registered", device)))
    assert _verdict(registry, message) == "stored"


def test_without_its_registration_event_an_unknown_answer_expires_after_its_ttl(
    fleet: dict[str, Outgoing],
) -> None:
    device, message = next(iter(fleet.items()))
    chain, now, records = Chain(), [0.0], _registered(fleet).records
    registry = _following(DeviceRegistry(chain.read, clock=lambda: now[0], unknown_ttl_s=10.0))
    assert _verdict(registry, message) == "unknown_device"
    chain.records[f"device:{device}"] = records[f"device:{device}"]
    now[0] = 4.9  # under half the ttl: the answer stands, and nothing is read
    assert _verdict(registry, message) == "unknown_device" and chain.reads == 1
    now[0] = 10.0  # expired: read again before use (registered devices keep watched_ttl_s)
    assert _verdict(registry, message) == "stored" and chain.reads == 2


class RacingChain(Chain):
    """A chain whose next read runs `overtake` before it answers: a block landing while the
    read is in flight, which answers the state from before that block."""

    def __init__(self) -> None:
        super().__init__()
        self.overtake: Callable[[], None] | None = None

    def read(self, namespace: str, key: str) -> Any:
        before = super().read(namespace, key)
        if self.overtake is not None:
            overtake, self.overtake = self.overtake, None
            overtake()
        return before


def test_a_suspension_refuses_the_device_even_when_it_lands_during_a_read(
    fleet: dict[str, Outgoing],
) -> None:
    (device, message), (other, other_message) = list(fleet.items())[:2]
    chain = RacingChain()
    chain.records = _registered(fleet).records
    registry = _following(DeviceRegistry(chain.read, clock=lambda: 0.0, capacity=2))
    assert _verdict(registry, message) == "stored"
    chain.records[f"device:{device}"] = {**chain.records[f"device:{device}"], "status": "suspended"}
    registry.apply_block(device_block(2, ("device_suspended", device)))
    assert _verdict(registry, message) == "device_suspended"

    def suspend_other() -> None:
        key = f"device:{other}"
        chain.records[key] = {**chain.records[key], "status": "suspended"}
        registry.apply_block(device_block(3, ("device_suspended", other)))

    chain.overtake = suspend_other
    # Read before its suspension's block: this message is checked against the older state,
    # but that answer is not kept over the block's
    assert _verdict(registry, other_message) == "stored"
    assert _verdict(registry, other_message) == "device_suspended"
    reads = chain.reads
    # Pushed out of the cache (two devices' room) and read again, a suspended device stays
    # refused: each of these three lookups pushes out the next one's device
    third = list(fleet.values())[2]
    assert _verdict(registry, third) == "stored"
    assert _verdict(registry, message) == "device_suspended"
    assert _verdict(registry, other_message) == "device_suspended"
    assert chain.reads == reads + 3


@pytest.mark.parametrize(
    ("name", "value"),
    [("registry_capacity", 0), ("registry_unknown_capacity", -1), ("registry_unknown_ttl_s", 0.0)],
)
def test_the_registry_bounds_are_checked_with_the_settings(name: str, value: float) -> None:
    forward = ForwardSettings(
        roadhealth_url="http://127.0.0.1:9/roadhealth",
        operator_org="bsn-operator",
        operator_key=SigningKey.generate(),
    )
    with pytest.raises(ValueError, match=name):
        GatewaySettings(
            broker_url="mqtt://127.0.0.1:1883",
            outbox_url="sqlite://",
            forward=forward,
            **{name: value},  # type: ignore[arg-type]
        )
