"""The backlog the intake is held back by, followed between counts of the outbox."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from iot_gateway.gateway import Gateway
from iot_gateway.simulator import Fleet, build_network
from iot_gateway.source import Delivery


def test_the_backlog_counts_what_was_stored_and_forwarded_since_the_last_count(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, gw: Any
) -> None:
    network = build_network(city=city, n_devices=2, n_segments=2, seed=7)
    suite.register(network)
    settings = gw.settings(suite, mqtt_url, city, tmp_path / "outbox.db", check_processes=0)
    gateway = Gateway(settings, ledger=suite.ledger)  # not started: driven step by step here
    try:
        assert gateway.backlog() == 0  # counted in the outbox
        fleet = Fleet(network, seed=1)
        now = time.time()
        group = [
            Delivery(m.topic, m.payload, mid, 1, 0, now)
            for mid, m in enumerate((fleet.next_message(now) for _ in range(6)), start=1)
        ]
        gateway.process_group(group)
        # At once, not at the next count: the queue_depth gauge and the intake's guard agree
        assert gateway.backlog() == gateway.outbox.unforwarded_count() == 6
        gateway.process_group(group)  # redelivered: stored once, counted once
        assert gateway.backlog() == 6

        def forwarded() -> bool:
            gateway.forwarder.step()
            return gateway.outbox.unforwarded_count() == 0

        gw.wait_until(forwarded, what="the group forwarded")
        assert gateway.backlog() == 0
    finally:
        gateway.stop()


def test_a_recount_between_a_forwards_commit_and_its_tally_never_undercounts(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, gw: Any, monkeypatch: Any
) -> None:
    """The forwarder counts a batch settled before its outbox commit: a recount landing
    between the two may count it twice (the guard pauses a moment longer), never subtract it
    twice (then the guard would let the outbox grow past its limit until the next count)."""
    network = build_network(city=city, n_devices=2, n_segments=2, seed=7)
    suite.register(network)
    settings = gw.settings(suite, mqtt_url, city, tmp_path / "outbox.db", check_processes=0)
    gateway = Gateway(settings, ledger=suite.ledger)
    try:
        fleet = Fleet(network, seed=1)

        def group(first_mid: int) -> list[Delivery]:
            now = time.time()
            messages = (fleet.next_message(now) for _ in range(6))
            return [
                Delivery(m.topic, m.payload, mid, 1, 0, now)
                for mid, m in enumerate(messages, start=first_mid)
            ]

        gateway.process_group(group(1))
        real_mark = gateway.outbox.mark_forwarded

        def mark_then_recount(batch_id: Any) -> None:
            real_mark(batch_id)  # committed: the outbox no longer counts the batch
            gateway._backlog_counted = (-math.inf, *gateway._backlog_counted[1:])
            gateway.backlog()  # the recount lands before the forwarder's own tally

        monkeypatch.setattr(gateway.outbox, "mark_forwarded", mark_then_recount)

        def forwarded() -> bool:
            gateway.forwarder.step()
            return gateway.outbox.unforwarded_count() == 0

        gw.wait_until(forwarded, what="the group forwarded")
        gateway.process_group(group(7))
        assert gateway.backlog() >= gateway.outbox.unforwarded_count() == 6
    finally:
        gateway.stop()
