"""Messages numbered into their batch when stored: sealing rewrites no message row, each batch's
leaves stay 0..n-1 through redeliveries, restarts and a seal racing the intake, and an outbox
written before (messages in no batch) is sealed after an upgrade in place. SQLite and, with
SMARTCITY_DATABASE_URL, PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event, insert

from chain import merkle
from iot_gateway.outbox import Batch, Outbox, messages
from tests.iot_gateway.test_outbox_contract import message


def sealed(outbox: Outbox) -> list[Batch]:
    """Every sealed batch of the owner, with its messages, oldest first (marked anchored)."""
    found: list[Batch] = []
    while (batch := outbox.next_open_batch("open")) is not None:
        outbox.mark_anchored(batch.id, "ab" * 32)
        again = outbox.next_open_batch("anchored")
        assert again is not None and again.id == batch.id
        outbox.mark_forwarded(batch.id)
        found.append(again)
    return found


def assert_whole(batch: Batch) -> None:
    """Leaves 0..n-1, as many as the count, and the root over them in that order."""
    assert [m.leaf_index for m in batch.messages] == list(range(batch.count))
    assert merkle.root([bytes.fromhex(m.hash) for m in batch.messages]).hex() == batch.root


def seqs(batch: Batch) -> list[int]:
    return [int(m.payload["seq"]) for m in batch.messages]


def test_sealing_a_batch_rewrites_no_message_row(outbox_url: str) -> None:
    outbox = Outbox(outbox_url, owner="gw-a")
    outbox.store([message("d1", seq) for seq in range(20)])
    statements: list[str] = []

    def seen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(outbox.engine, "before_cursor_execute", seen)
    batch = outbox.seal_batch(max_count=1000)
    event.remove(outbox.engine, "before_cursor_execute", seen)
    assert batch is not None and batch.count == 20
    # Each message row is written once, by the store: the seal writes its batch only
    assert not [s for s in statements if "UPDATE iot_gateway_messages" in " ".join(s.split())]
    (only,) = sealed(outbox)
    assert_whole(only)
    assert seqs(only) == list(range(20))
    outbox.close()


def test_batches_fill_to_batch_max_and_redeliveries_leave_no_gap_in_the_leaves(
    outbox_url: str,
) -> None:
    outbox = Outbox(outbox_url, owner="gw-a", batch_max=4)
    outbox.store([message("d1", seq) for seq in (0, 2, 4)])
    # Redeliveries and a replayed seq among new messages, across a batch boundary
    group = [message("d1", seq) for seq in (2, 1, 0, 3, 5, 4, 6)] + [message("d1", 2, 1.0)]
    outcomes = outbox.store(group).outcome
    dup, new = "duplicate", "stored"
    assert outcomes == [dup, new, dup, new, new, dup, new, "replayed_seq"]
    assert outbox.pending_count() == 7 and outbox.unforwarded_count() == 7
    assert outbox.pending_at_least(7) and not outbox.pending_at_least(8)
    # A group of nothing new opens no batch
    assert outbox.store([message("d1", 1)]).outcome == ["duplicate"]
    first = outbox.seal_batch(max_count=4)
    second = outbox.seal_batch(max_count=4)
    assert first is not None and second is not None and outbox.seal_batch(max_count=4) is None
    batches = sealed(outbox)
    for batch in batches:
        assert_whole(batch)
    assert [seqs(b) for b in batches] == [[0, 2, 4, 1], [3, 5, 6]]
    assert outbox.batch_states() == {"forwarded": 2} and outbox.unforwarded_count() == 0
    outbox.close()


def test_a_restarted_gateway_seals_the_batch_its_last_run_was_filling(outbox_url: str) -> None:
    before = Outbox(outbox_url, owner="gw-a")
    before.store([message("d1", seq) for seq in range(3)])
    before.close()  # as if killed: the filling batch is in the database only
    after = Outbox(outbox_url, owner="gw-a")
    after.store([message("d1", seq) for seq in range(2, 6)])
    assert after.pending_count() == 6 and after.oldest_pending_at() is not None
    while after.seal_batch(max_count=1000) is not None:
        pass
    batches = sealed(after)
    for batch in batches:
        assert_whole(batch)
    assert [seqs(b) for b in batches] == [[0, 1, 2], [3, 4, 5]]
    assert after.pending_count() == 0 and after.oldest_pending_at() is None
    after.close()


def test_an_outbox_of_the_previous_version_is_sealed_after_an_upgrade(outbox_url: str) -> None:
    outbox = Outbox(outbox_url, owner="gw-a")
    # Rows as the previous version stored them: in no batch until a seal numbered them
    legacy = [message("d1", seq) for seq in range(5)]
    with outbox.engine.begin() as conn:
        conn.execute(
            insert(messages),
            [
                {
                    "device": m.device,
                    "seq": m.seq,
                    "topic": m.topic,
                    "payload": m.body.decode(),
                    "hash": m.hash,
                    "owner": "gw-a",
                    "stored_at": 1767225600.0 + m.seq,
                }
                for m in legacy
            ],
        )
    outbox.store([message("d1", seq) for seq in range(3, 8)])
    assert outbox.pending_count() == 8 and outbox.unforwarded_count() == 8
    assert outbox.oldest_pending_at() == 1767225600.0
    while outbox.seal_batch(max_count=3) is not None:
        pass
    batches = sealed(outbox)
    for batch in batches:
        assert_whole(batch)
    # The old messages are sealed first; batches are anchored in the order they were opened
    assert sorted(seqs(b) for b in batches) == [[0, 1, 2], [3, 4], [5, 6, 7]]
    assert outbox.pending_count() == 0 and outbox.unforwarded_count() == 0
    outbox.close()


def test_a_seal_racing_the_intake_loses_no_message_and_splits_no_leaf(outbox_url: str) -> None:
    outbox = Outbox(outbox_url, owner="gw-a", batch_max=50)
    done = threading.Event()

    def intake() -> None:
        for start in range(0, 600, 30):
            outbox.store([message("d1", seq) for seq in range(start, start + 30)])
        done.set()

    thread = threading.Thread(target=intake)
    thread.start()
    while not done.is_set():
        outbox.seal_batch(max_count=50)
    thread.join()
    while outbox.seal_batch(max_count=50) is not None:
        pass
    batches = sealed(outbox)
    for batch in batches:
        assert_whole(batch)
        assert 0 < batch.count <= 50
    assert sorted(s for b in batches for s in seqs(b)) == list(range(600))
    assert outbox.pending_count() == 0 and outbox.unforwarded_count() == 0
    outbox.close()
