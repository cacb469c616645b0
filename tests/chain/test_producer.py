"""A lone validator's block producer: blocks are written behind the next block's execution,
and nobody hears of a block before it is on disk."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from chain.api import create_app
from chain.client import AsyncChainClient, ChainClient, Identity
from chain.db import make_engine
from chain.errors import ClientError, StorageError
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.node import GIL_SWITCH_INTERVAL_S, Node, NodeOptions
from chain.store import BlockStore
from chain.tx import Tx


class GatedStore(BlockStore):
    """Block writes wait for the test to open the gate; from `fail_from` on they fail."""

    def __init__(self, *args: Any, fail_from: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.fail_from = fail_from

    def commit_block(self, **kwargs: Any) -> None:
        self.gate.wait(10)
        if self.fail_from is not None and kwargs["height"] >= self.fail_from:
            raise StorageError("disk gone")
        super().commit_block(**kwargs)


@pytest.fixture
def gated(db_url: str, genesis: Genesis) -> Iterator[Callable[..., Ledger]]:
    engines = []

    def make(fail_from: int | None = None) -> Ledger:
        engines.append(make_engine(db_url))
        store = GatedStore(engines[-1], fail_from=fail_from)
        store.gate.set()  # genesis and the first block go through
        return Ledger(genesis, store)

    yield make
    for engine in engines:
        engine.dispose()


def anchors(sign: Callable[..., Tx], key: Any, count: int) -> list[Tx]:
    return [
        sign(key, "anchors", "anchor", {"root": f"{i:064x}", "count": 1, "label": "t"})
        for i in range(1, count + 1)
    ]


def test_a_receipt_arrives_only_once_its_block_is_on_disk(
    gated: Callable[..., Ledger], keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    ledger = gated()
    store = ledger.store
    assert isinstance(store, GatedStore)
    node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    node.start()
    try:
        store.gate.clear()
        tx = anchors(sign, keys.agency, 1)[0]
        node.submit([tx])
        future = node.wait_future(tx.hash)
        deadline = time.monotonic() + 5
        while ledger.height < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Committed in memory, its write held at the gate: nobody has heard of it yet
        assert ledger.height == 2
        assert not future.done()
        assert ledger.store_height() == 1
        store.gate.set()
        receipt = future.result(timeout=5)
        assert receipt["status"] == "ok"
        assert store.tx(tx.hash) is not None
    finally:
        node.stop()
    # Whatever the producer committed is on disk once it has stopped
    assert store.latest_height() == ledger.height


def test_a_stopped_node_leaves_no_writer_thread_behind(
    gated: Callable[..., Ledger], keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    """An application that starts and stops nodes (a test suite, a bench, an embedded
    validator) gets its threads back: a stopped node's writer held the whole ledger alive."""
    before = set(threading.enumerate())
    ledger = gated()
    node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    node.start()
    txs = anchors(sign, keys.agency, 3)
    node.submit(txs)
    assert all(node.wait(tx.hash, 5) for tx in txs)
    writers = [t for t in set(threading.enumerate()) - before if t.name == "block-writer"]
    assert len(writers) == 1
    node.stop()
    assert not writers[0].is_alive()
    assert ledger.store.latest_height() == ledger.height


@dataclass
class HeldWrite:
    """A lone validator behind a live API whose transaction `tx` is committed in memory while
    its block's write waits at the store's gate."""

    node: Node
    store: GatedStore
    url: str
    client: ChainClient
    identity: Identity
    tx: Tx


@contextmanager
def held_write(
    gated: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    live_server: Callable[[Any], Any],
) -> Iterator[HeldWrite]:
    ledger = gated()
    store = ledger.store
    assert isinstance(store, GatedStore)
    node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    node.start()
    identity = Identity("regulator", keys.regulator)
    try:
        with (
            live_server(create_app(node)) as server,
            ChainClient(server.url, identity=identity) as client,
        ):
            store.gate.clear()
            tx = anchors(sign, keys.agency, 1)[0]
            assert client.submit(tx) == tx.hash
            deadline = time.monotonic() + 5
            while tx.hash not in ledger.live_txs and time.monotonic() < deadline:
                time.sleep(0.01)
            assert tx.hash in ledger.live_txs and store.tx(tx.hash) is None
            yield HeldWrite(node, store, server.url, client, identity, tx)
    finally:
        store.gate.set()
        node.stop()


def test_a_transaction_whose_block_is_being_written_reads_pending_not_unknown(
    gated: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    live_server: Callable[[Any], Any],
) -> None:
    # An acknowledged transaction answered 404 unknown_tx for as long as its block's write was
    # in flight (out of the mempool already, not yet in the store)
    with held_write(gated, keys, sign, live_server) as held:
        held.node.mempool.remove([held.tx.hash])  # as the next proposal's reap does
        assert held.client.tx(held.tx.hash)["status"] == "pending"
        held.store.gate.set()
        receipt = held.node.wait_future(held.tx.hash).result(timeout=5)
        info = held.client.tx(held.tx.hash)
        assert info["status"] == "committed" and info["height"] == receipt["height"]


def test_status_reports_the_block_on_disk_not_the_one_being_written(
    gated: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    live_server: Callable[[Any], Any],
) -> None:
    # /v1/status answered the height committed in memory: a client that read it just before a
    # kill -9 found the restarted node one block lower (tests/chain/test_restart.py, flaky)
    with held_write(gated, keys, sign, live_server) as held:
        ledger = held.node.ledger
        on_disk = held.store.latest_height()
        assert ledger.height == on_disk + 1
        status = held.client.status()
        assert status["height"] == on_disk
        stored = held.store.block(on_disk)
        assert stored is not None and status["latest_hash"] == stored[1]["block_hash"]
        assert status["state_root"] == stored[0]["state_root"] != ledger.state.root.hex()
        held.store.gate.set()
        receipt = held.node.wait_future(held.tx.hash).result(timeout=5)
        status = held.client.status()
        assert status["height"] == receipt["height"] == ledger.height
        assert status["state_root"] == ledger.state.root.hex()


def test_waiting_for_a_transaction_whose_block_is_being_written_reads_no_database(
    gated: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    live_server: Callable[[Any], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every waiter registered after the producer took its transaction out of the mempool read
    # the store (a database query per waiter, found nothing): the in-process single-validator
    # bench spent a third of its submitting thread there
    with held_write(gated, keys, sign, live_server) as held:
        held.node.mempool.remove([held.tx.hash])  # as the pipelined producer does at commit
        reads: list[str] = []
        read = held.store.tx

        def counted(tx_hash: str) -> Any:
            reads.append(tx_hash)
            return read(tx_hash)

        monkeypatch.setattr(held.store, "tx", counted)
        future = held.node.wait_future(held.tx.hash)
        assert not future.done() and reads == []
        held.store.gate.set()
        assert future.result(timeout=5)["tx"] == held.tx.hash
        assert held.tx.hash not in held.node.ledger.unwritten


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_retry_of_a_transaction_whose_block_is_being_written_waits_for_its_receipt(
    gated: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    live_server: Callable[[Any], Any],
    flavour: str,
) -> None:
    # A client retrying a committed transaction (409 tx_replayed) read its receipt at once; while
    # the block's write was in flight the node answered `pending` with no receipt and the SDK
    # raised TypeError, which a service turned into a 500
    with held_write(gated, keys, sign, live_server) as held:
        threading.Timer(0.3, held.store.gate.set).start()  # the write lands while the retry waits

        async def retry_async() -> dict[str, Any]:
            async with AsyncChainClient(held.url, identity=held.identity) as client:
                return await client.submit_and_wait(held.tx, timeout_s=5)

        if flavour == "sync":
            receipt = held.client.submit_and_wait(held.tx, timeout_s=5)
        else:
            receipt = asyncio.run(retry_async())
        assert receipt["tx"] == held.tx.hash and receipt["status"] == "ok"
        assert receipt == held.node.wait_future(held.tx.hash).result(timeout=5)


def test_a_retry_whose_receipt_never_lands_times_out_with_a_reason(
    gated: Callable[..., Ledger],
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    live_server: Callable[[Any], Any],
) -> None:
    with held_write(gated, keys, sign, live_server) as held:
        with pytest.raises(ClientError) as refused:
            held.client.submit_and_wait(held.tx, timeout_s=0.3)
        assert refused.value.code == "commit_timeout" and "still pending" in str(refused.value)


def test_a_failed_block_write_stops_the_producer_and_its_waiters_hear_nothing(
    gated: Callable[..., Ledger], keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    ledger = gated(fail_from=2)
    node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    node.start()
    first, second = anchors(sign, keys.agency, 2)
    node.submit([first])
    future = node.wait_future(first.hash)
    deadline = time.monotonic() + 5
    while ledger.height < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    node.submit([second])  # the next block flushes the failed write before it signs
    deadline = time.monotonic() + 5
    while node.fatal is None and time.monotonic() < deadline:
        time.sleep(0.01)
    node.stop()  # does not raise: the producer already stopped on the error
    assert isinstance(node.fatal, StorageError)
    assert "disk gone" in str(node.fatal)
    assert not future.done()
    assert ledger.height == 2  # the second block was never signed or committed
    assert ledger.store.latest_height() == 1


def test_a_started_node_lets_threads_waiting_for_the_gil_in_sooner(
    ledger: Ledger, keys: SimpleNamespace
) -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        Node(ledger, key=None, options=NodeOptions(gil_switch_interval_s=None)).start()
        assert sys.getswitchinterval() == pytest.approx(0.005)
        node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
        node.start()
        node.stop()
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    finally:
        sys.setswitchinterval(before)
