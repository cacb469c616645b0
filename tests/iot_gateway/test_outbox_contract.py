"""One contract for the outbox, run against SQLite and (with SMARTCITY_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

from chain import merkle
from chain.encoding import canonical, sha256
from iot_gateway.outbox import Incoming, Outbox


def message(device: str, seq: int, speed: float = 12.5) -> Incoming:
    payload: dict[str, Any] = {
        "device": device,
        "seq": seq,
        "t0": 1767225600.25,
        "rate_hz": 50,
        "lat": 22.5,
        "lon": 114.0,
        "speed_mps": speed,
        "acc_z": [9.81, 9.79, 9.83],
        "sig": "c2ln",
    }
    return Incoming.of(f"city/c/road/s/sensor/{device}/telemetry", payload)


def test_a_message_is_stored_once_and_a_reused_seq_with_other_content_is_a_replay(
    outbox_url: str,
) -> None:
    outbox = Outbox(outbox_url, owner="gw-a")
    first = outbox.store([message("d1", 1), message("d1", 2), message("d1", 1)])
    assert first.outcome == ["stored", "stored", "duplicate"]
    again = outbox.store([message("d1", 2), message("d1", 2, speed=13.0), message("d1", 5)])
    assert again.outcome == ["duplicate", "replayed_seq", "stored"]
    stored = outbox.stored_messages()
    assert [(d, s) for d, s, _ in stored] == [("d1", 1), ("d1", 2), ("d1", 5)]
    assert stored[1][2] == sha256(canonical(message("d1", 2).payload_dict())).hex()
    assert outbox.sequence_gaps() == 2 and outbox.last_seqs() == {"d1": 5}
    outbox.close()
    # Durable: a new process opening the same database sees the same
    reopened = Outbox(outbox_url, owner="gw-a")
    assert reopened.store([message("d1", 5)]).outcome == ["duplicate"]
    assert reopened.unforwarded_count() == 3
    reopened.close()


def test_a_group_larger_than_one_insert_statement_is_stored_whole(outbox_url: str) -> None:
    # 1,203 messages (the insert writes 500 rows a statement), redeliveries spread through it
    outbox = Outbox(outbox_url, owner="gw-big")
    outbox.store([message("big", seq) for seq in range(0, 1200, 7)])
    group = [message("big", seq) for seq in range(1200)] + [message("big", 3, speed=1.0)] * 3
    outcomes = outbox.store(group).outcome
    assert outcomes[:1200] == ["duplicate" if seq % 7 == 0 else "stored" for seq in range(1200)]
    assert outcomes[1200:] == ["replayed_seq"] * 3
    assert sorted(s for d, s, _ in outbox.stored_messages() if d == "big") == list(range(1200))
    assert outbox.sequence_gaps() == 0 and outbox.last_seqs()["big"] == 1199
    outbox.close()


def test_two_gateways_racing_for_one_message_store_it_once(outbox_url: str) -> None:
    outboxes = [Outbox(outbox_url, owner=f"gw-{i}") for i in range(2)]
    outcomes: list[list[str]] = [[], []]
    batch = [message("d2", seq) for seq in range(1, 101)]

    def store(i: int) -> None:
        outcomes[i] = outboxes[i].store(batch).outcome

    threads = [threading.Thread(target=store, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each message is stored by exactly one of them and a duplicate for the other
    for a, b in zip(*outcomes, strict=True):
        assert sorted((a, b)) == ["duplicate", "stored"]
    assert len(outboxes[0].stored_messages()) == 100
    assert outboxes[0].sequence_gaps() == 0
    for outbox in outboxes:
        outbox.close()


def test_batches_are_sealed_in_arrival_order_per_owner_and_move_through_their_states(
    outbox_url: str,
) -> None:
    mine, theirs = Outbox(outbox_url, owner="gw-a"), Outbox(outbox_url, owner="gw-b")
    mine.store([message("d3", seq) for seq in (3, 1, 2)])
    theirs.store([message("d4", 1)])
    assert mine.pending_count() == 3 and mine.oldest_pending_at() is not None
    assert mine.pending_at_least(3) and not mine.pending_at_least(4)
    assert theirs.pending_at_least(1) and not theirs.pending_at_least(2)
    sealed = mine.seal_batch(max_count=2)
    assert sealed is not None and sealed.count == 2 and sealed.messages == ()
    batch = mine.next_open_batch("open")
    assert batch is not None and batch.id == sealed.id
    assert [(m.payload["seq"], m.leaf_index) for m in batch.messages] == [(3, 0), (1, 1)]
    assert merkle.root([bytes.fromhex(m.hash) for m in batch.messages]).hex() == batch.root
    assert batch.messages[0].payload_json == message("d3", 3).body.decode()
    assert mine.unforwarded_count() == 3 and mine.oldest_unanchored_at() is not None
    mine.mark_anchored(batch.id, "ab" * 32)
    assert mine.next_open_batch("open") is None
    anchored = mine.next_open_batch("anchored")
    assert anchored is not None and anchored.anchor_tx == "ab" * 32
    mine.mark_forwarded(batch.id)
    rest = mine.seal_batch(max_count=10)
    assert rest is not None and rest.count == 1
    mine.mark_refused(rest.id, "bad_batch: for the test")
    assert mine.batch_states() == {"forwarded": 1, "refused": 1}
    assert mine.unforwarded_count() == 0 and mine.oldest_unanchored_at() is None
    # The other gateway's message was never sealed into this owner's batches
    assert theirs.pending_count() == 1 and theirs.unforwarded_count() == 1
    mine.close()
    theirs.close()


def test_each_devices_lowest_highest_and_count_follow_late_and_early_windows(
    outbox_url: str,
) -> None:
    outbox = Outbox(outbox_url, owner="gw-a")
    outbox.store([message("d2", 5), message("d1", 7), message("d2", 6)])
    # A late window lowers d2's lowest seq; d1 gains a higher one; d3 is new
    outbox.store([message("d3", 0), message("d2", 3), message("d1", 9), message("d2", 3)])
    assert outbox.last_seqs() == {"d1": 9, "d2": 6, "d3": 0}
    assert outbox.sequence_gaps() == 1 + 1  # d1's 8, d2's 4
    outbox.close()
