"""A transaction's hash is committed at most once, so the block store needs no unique index on
the full hash (its rows are keyed by (height, idx) and found through a 16-hex-digit prefix).

Every block a node writes is a `BlockResult`, and only `Ledger.execute` makes one: for the
node's own proposals, for a peer's proposal it checks, for blocks fetched to catch up. It
refuses a block holding a transaction committed before while that one may still be included
(the ledger keeps each committed hash until its expiry height, and reloads them from the store
at start-up), and one holding it after its expiry height as expired. The door (`check_tx`)
answers the same two ways. Hypothesis draws the transaction's lifetime, when a Byzantine
proposer replays it, and whether the node restarted in between.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from chain.errors import TxRejected
from chain.executed import LiveTxs
from chain.ledger import InvalidBlock, Ledger
from chain.tx import Tx

from .test_contracts import commit


@pytest.fixture
def ledgers(make_ledger: Callable[..., Ledger]) -> list[Ledger]:
    """The node's ledger, the last one current: Hypothesis's examples share it (and the chain)."""
    return [make_ledger()]


def stored_rows(ledger: Ledger, tx_hash: str) -> int:
    with ledger.store.engine.connect() as conn:
        query = text("SELECT count(*) FROM chain_txs WHERE hash = :h")
        return int(conn.execute(query, {"h": tx_hash}).scalar_one())


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ttl=st.integers(min_value=0, max_value=3),
    replay_after=st.integers(min_value=1, max_value=4),
    restart=st.booleans(),
    with_others=st.booleans(),
)
def test_a_committed_transaction_is_never_committed_again(
    ledgers: list[Ledger],
    make_ledger: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    ttl: int,
    replay_after: int,
    restart: bool,
    with_others: bool,
) -> None:
    ledger = ledgers[-1]  # the chain as the earlier examples left it
    committed_at = ledger.height + 1
    expiry = committed_at + ttl
    args = {"root": f"{committed_at:064x}", "count": 1, "label": "once"}
    tx = sign(keys.agency, "anchors", "anchor", args, expiry_height=expiry)
    assert commit(ledger, keys.validator, [tx]).receipts[0].ok
    for _ in range(replay_after - 1):
        commit(ledger, keys.validator, [])
    if restart:  # the committed hashes come back from the store
        ledger = make_ledger()
        ledgers.append(ledger)
    height = ledger.height + 1
    assert height == committed_at + replay_after
    others = [sign(keys.agency, "anchors", "anchor", {**args, "label": "other"})]
    block = [*others, tx] if with_others else [tx]

    # Verify the door and block execution both refuse it, with the reason that applies
    with pytest.raises(TxRejected) as refused:
        ledger.check_tx(tx)
    expected = "included twice" if height <= expiry else f"expired at {expiry}"
    with pytest.raises(InvalidBlock, match=expected):
        ledger.execute(block, height=height, time_ms=1_800_000_000_000, proposer="00" * 32)
    answer = ("tx_replayed", 409) if height <= expiry else ("tx_expired", 400)
    assert (refused.value.code, refused.value.status) == answer
    assert stored_rows(ledger, tx.hash) == 1


@settings(max_examples=80, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=5),
    known=st.lists(st.integers(min_value=0, max_value=12), max_size=10),
    blocks=st.lists(st.lists(st.integers(min_value=0, max_value=12), max_size=5), max_size=12),
)
def test_a_committed_hash_is_kept_exactly_until_its_expiry_passes(
    start: int, known: list[int], blocks: list[list[int]]
) -> None:
    """What the ledger keeps after each block is every committed transaction whose expiry
    height is not below the block's (what a rebuild of the whole map kept), however the
    expiries of the reloaded and the new transactions interleave."""
    expiries = {f"r{i}": start + 1 + ttl for i, ttl in enumerate(known)}
    live = LiveTxs(dict(expiries), next_height=start + 1)
    for offset, ttls in enumerate(blocks, start=1):
        height = start + offset
        for i, ttl in enumerate(ttls):
            live.add(f"b{height}-{i}", height + ttl)
            expiries[f"b{height}-{i}"] = height + ttl
        live.forget_expired(height)
        kept = {tx_hash for tx_hash, expiry in expiries.items() if expiry >= height}
        assert set(live) == kept and len(live) == len(kept)
        assert all(tx_hash in live for tx_hash in kept)
