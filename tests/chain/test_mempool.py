"""What the mempool keeps durable: a client's transactions, not a peer's gossiped copies."""

from __future__ import annotations

import json
from types import SimpleNamespace

from chain.db import make_engine
from chain.mempool import Mempool
from chain.store import BlockStore
from chain.tx import Tx, sign_tx


def _txs(keys: SimpleNamespace, count: int) -> list[Tx]:
    return [
        sign_tx(
            keys.agency,
            chain_id="mempool-test",
            contract="anchors",
            method="anchor",
            args={"root": f"{i:064x}", "count": 1, "label": "t"},
            expiry_height=100,
        )
        for i in range(count)
    ]


def test_gossiped_copies_stay_in_memory_and_a_clients_copy_is_persisted_before_its_ack(
    db_url: str, keys: SimpleNamespace
) -> None:
    store = BlockStore(make_engine(db_url))
    mempool = Mempool(store)
    gossiped, submitted = _txs(keys, 3), _txs(keys, 5)[3:]

    mempool.add(gossiped, gossip=False)
    assert [tx.hash in mempool for tx in gossiped] == [True] * 3
    assert store.pending() == []  # held, not written: the peer that accepted them wrote them

    # A client hands the node one it holds only as a gossiped copy, and two new ones
    admitted = mempool.add([gossiped[0], *submitted])
    assert [a.duplicate for a in admitted] == [True, False, False]
    durable = {gossiped[0].hash, *(tx.hash for tx in submitted)}

    # After a restart the node holds exactly what it acknowledged to clients
    restarted = Mempool(store)
    assert restarted.restore(lambda tx: None) == 3
    assert {h for h in durable if h in restarted} == durable
    assert gossiped[1].hash not in restarted

    # Submitting it again writes nothing twice; committing forgets the in-memory copies
    assert mempool.add([gossiped[0]])[0].duplicate
    assert len(store.pending()) == 3
    mempool.remove([tx.hash for tx in gossiped])
    assert mempool.reap(10, lambda tx: True) == submitted


def test_a_client_batch_listing_a_gossiped_transaction_twice_persists_it_once(
    db_url: str, keys: SimpleNamespace
) -> None:
    store = BlockStore(make_engine(db_url))
    mempool = Mempool(store)
    (tx,) = _txs(keys, 1)
    mempool.add([tx], gossip=False)
    assert [a.duplicate for a in mempool.add([tx, tx])] == [True, True]
    assert len(store.pending()) == 1


def test_an_unreadable_pending_row_does_not_stop_a_restart(
    db_url: str, keys: SimpleNamespace
) -> None:
    """A row no node can read (written by an older door, or damaged) is skipped with a warning;
    the node starts with the others."""
    store = BlockStore(make_engine(db_url))
    Mempool(store).add(_txs(keys, 2))
    body = _txs(keys, 1)[0].to_json()
    body["args"] = {**body["args"], "metadata": {"n": 10**17}}  # an integer past 2^53
    store.add_pending([("ff" * 32, 99, json.dumps(body))])
    restarted = Mempool(store)
    assert restarted.restore(lambda tx: None) == 2
