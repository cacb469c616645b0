"""A store whose commit reaches the database while its client is told it failed (PostgreSQL: the
connection lost during COMMIT) is retried by the intake; the outbox must still seal and forward
everything afterwards (review R1: before the fix no batch was ever sealed again)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from iot_gateway.outbox import Outbox, OutboxError
from tests.iot_gateway.test_outbox_contract import message


def _outbox_whose_next_commit_is_reported_lost(path: Path) -> tuple[Outbox, dict[str, bool]]:
    outbox = Outbox(f"sqlite:///{path}", owner="gw-a")
    real_begin = outbox.engine.begin
    lose = {"next": False}

    @contextlib.contextmanager
    def begin() -> Iterator[Connection]:
        with real_begin() as conn:
            yield conn
        if lose["next"]:  # committed, and the client is told otherwise
            lose["next"] = False
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    outbox.engine.begin = begin  # type: ignore[method-assign]
    return outbox, lose


def test_a_store_committed_but_reported_failed_leaves_every_batch_sealable(
    tmp_path: Path,
) -> None:
    outbox, lose = _outbox_whose_next_commit_is_reported_lost(tmp_path / "outbox.db")
    outbox.store([message("d1", s) for s in range(3)])
    lose["next"] = True
    with pytest.raises(OutboxError, match="outbox write failed"):
        outbox.store([message("d1", s) for s in (3, 4)])
    retried = outbox.store([message("d1", s) for s in (3, 4)])  # the intake's retry
    assert retried.outcome == ["duplicate", "duplicate"]
    outbox.store([message("d1", s) for s in range(5, 2005)])
    sealed = 0
    while outbox.seal_batch(max_count=1000) is not None:
        sealed += 1
    assert sealed >= 3
    with outbox.engine.connect() as conn:
        unsealed = conn.execute(
            text(
                "SELECT count(*) FROM iot_gateway_batches WHERE owner = 'gw-a'"
                " AND state = 'filling'"
            )
        ).scalar_one()
        leaves = conn.execute(
            text(
                "SELECT batch_id, leaf_index FROM iot_gateway_messages"
                " ORDER BY batch_id, leaf_index"
            )
        ).all()
    assert unsealed == 0
    by_batch: dict[int, list[int]] = {}
    for batch_id, leaf in leaves:
        by_batch.setdefault(batch_id, []).append(leaf)
    assert all(found == list(range(len(found))) for found in by_batch.values())
    assert sum(len(found) for found in by_batch.values()) == 2005


def test_a_batch_whose_leaves_were_numbered_twice_is_renumbered_when_sealed(
    tmp_path: Path,
) -> None:
    # An outbox left in that state by the previous code: two messages share leaves 3 and 4
    outbox = Outbox(f"sqlite:///{tmp_path / 'outbox.db'}", owner="gw-a")
    outbox.store([message("d1", s) for s in range(7)])
    with outbox.engine.begin() as conn:
        conn.execute(
            text("UPDATE iot_gateway_messages SET leaf_index = leaf_index - 2 WHERE seq >= 5")
        )
    assert outbox.seal_batch(max_count=1000) is not None
    with outbox.engine.connect() as conn:
        order = (
            conn.execute(text("SELECT seq FROM iot_gateway_messages ORDER BY leaf_index"))
            .scalars()
            .all()
        )
    assert sorted(order) == list(range(7)) and order[:3] == [0, 1, 2]
