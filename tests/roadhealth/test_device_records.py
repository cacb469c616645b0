"""Road health's device records: kept while the chain's event stream shows no change of the
device, within bounds whatever ids the ingest calls name."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.roadhealth.device_records import DeviceRecords, Record
from tests._device_events import device_block

FLEET = [f"veh-{i}" for i in range(6)]
DEVICE_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)


class Chain:
    """Device records as the roadhealth contract holds them, counting reads; `overtake` runs
    inside the next read, after it read the state (a block landing while it is in flight)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {
            device: {"pub_key": f"{i:064x}", "status": "active", "vehicle_class": "car"}
            for i, device in enumerate(FLEET)
        }
        self.reads = 0
        self.overtake: Callable[[], None] | None = None

    def device(self, device: str) -> Record:
        self.reads += 1
        record = self.records.get(device)
        if self.overtake is not None:
            overtake, self.overtake = self.overtake, None
            overtake()
        return record


def _following(chain: Chain, **bounds: int) -> DeviceRecords:
    """Records as they are once the event stream delivered a block (applied in the test's
    thread, so nothing runs behind the test's back)."""
    records = DeviceRecords(chain.device, **bounds)
    records.apply(device_block(1))
    assert records.following.is_set()
    return records


@settings(max_examples=40, deadline=None)
@given(junk=st.lists(DEVICE_ID.filter(lambda d: d not in FLEET), unique=True, max_size=80))
def test_a_run_of_unknown_ids_stays_within_the_bounds_and_each_is_unknown(junk: list[str]) -> None:
    chain = Chain()
    records = _following(chain, capacity=len(FLEET), unknown_capacity=8)
    assert all(records.get(device) is not None for device in FLEET)
    reads = chain.reads
    assert all(records.get(device) is None for device in junk)  # refused as unknown_device
    assert records.kept() == (len(FLEET), min(len(junk), 8))
    assert chain.reads == reads + len(junk)
    # Ids still kept cost nothing, and no registered device was pushed out
    assert all(records.get(device) is None for device in junk[-8:])
    assert all(records.get(device) is not None for device in FLEET)
    assert chain.reads == reads + len(junk)


@settings(max_examples=40, deadline=None)
@given(order=st.lists(st.sampled_from(FLEET), max_size=40))
def test_a_registered_device_past_the_capacity_is_read_again(order: list[str]) -> None:
    chain, capacity = Chain(), 3
    records = _following(chain, capacity=capacity)
    recent: OrderedDict[str, None] = OrderedDict()  # the least recently used first
    for device in order:
        reads = chain.reads
        record = records.get(device)
        assert record is not None and record["status"] == "active"
        # Read again exactly when the capacity pushed it out since it was last used
        assert chain.reads == reads + (device not in recent)
        recent[device] = None
        recent.move_to_end(device)
        if len(recent) > capacity:
            recent.popitem(last=False)
    assert records.kept() == (len(recent), 0)


def test_an_id_registered_after_it_was_unknown_is_found_when_its_registration_arrives() -> None:
    chain = Chain()
    records = _following(chain)
    assert records.get("late-1") is None
    chain.records["late-1"] = {"pub_key": "ab" * 32, "status": "active", "vehicle_class": "bus"}
    assert records.get("late-1") is None and chain.reads == 1  # kept until the chain changes it
    records.apply(device_block(2, ("device_registered", "late-1")))
    found = records.get("late-1")
    assert found is not None and found["vehicle_class"] == "bus"


def test_a_suspension_is_seen_even_when_it_lands_during_a_read() -> None:
    chain = Chain()
    records = _following(chain, capacity=2)
    assert records.get("veh-0")["status"] == "active"  # type: ignore[index]
    chain.records["veh-0"] = {**chain.records["veh-0"], "status": "suspended"}
    records.apply(device_block(2, ("device_suspended", "veh-0")))
    assert records.get("veh-0")["status"] == "suspended"  # type: ignore[index]

    def suspend() -> None:
        chain.records["veh-1"] = {**chain.records["veh-1"], "status": "suspended"}
        records.apply(device_block(3, ("device_suspended", "veh-1")))

    chain.overtake = suspend
    # This read answers the state before the block; it is not kept over the block's
    assert records.get("veh-1")["status"] == "active"  # type: ignore[index]
    assert records.get("veh-1")["status"] == "suspended"  # type: ignore[index]
    # Pushed out by other devices and read again, the suspended ones stay suspended
    assert records.get("veh-2") is not None and records.get("veh-3") is not None
    assert records.get("veh-0")["status"] == "suspended"  # type: ignore[index]
    assert records.get("veh-1")["status"] == "suspended"  # type: ignore[index]


def test_a_relayed_change_drops_what_was_kept_of_the_device() -> None:
    chain = Chain()
    records = _following(chain)
    assert records.get("veh-0") is not None and records.get("ghost") is None
    assert records.kept() == (1, 1)
    records.forget("veh-0")  # a transaction this process relayed
    assert records.kept() == (0, 1)
    reads = chain.reads
    assert records.get("veh-0") is not None and chain.reads == reads + 1


@pytest.mark.parametrize("bounds", [{"capacity": 0}, {"unknown_capacity": 0}])
def test_a_cache_of_nothing_is_refused(bounds: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DeviceRecords(Chain().device, **bounds)
