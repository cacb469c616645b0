"""Where acknowledged transactions committed, read from a node's blocks.

One request per block instead of one per transaction: a few seconds of load leave thousands of
acknowledged transactions, and asking the node about each in turn took longer than committing
them did. Reading every block also shows what a per-transaction look-up cannot: that no
transaction is in two blocks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from chain.client import ChainClient

POLL_S = 0.1


class Committed:
    """The heights at which each transaction committed, from block 1 up to a node's height."""

    def __init__(self) -> None:
        self.heights: dict[str, list[int]] = {}
        self.scanned = 0  # blocks 1..scanned are indexed

    def scan(self, client: ChainClient) -> None:
        """Index the blocks the node committed since the last scan."""
        top = int(client.status()["height"])
        for height in range(self.scanned + 1, top + 1):
            for tx_hash in client.block(height)["txs"]:
                self.heights.setdefault(tx_hash, []).append(height)
            self.scanned = height

    def missing(self, acknowledged: Iterable[str]) -> set[str]:
        return set(acknowledged) - self.heights.keys()

    def twice(self) -> dict[str, list[int]]:
        return {h: heights for h, heights in self.heights.items() if len(heights) > 1}


def wait_all_committed(
    client: ChainClient, acknowledged: Iterable[str], timeout_s: float = 60
) -> Committed:
    """Fails unless every acknowledged transaction commits within TIMEOUT_S, each exactly once."""
    wanted = set(acknowledged)
    committed = Committed()
    deadline = time.monotonic() + timeout_s
    committed.scan(client)
    while committed.missing(wanted) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        committed.scan(client)
    missing = committed.missing(wanted)
    assert not missing, f"{len(missing)} of {len(wanted)} acknowledged transactions were lost"
    twice = committed.twice()
    assert not twice, f"transactions committed more than once: {dict(list(twice.items())[:5])}"
    return committed
