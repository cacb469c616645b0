"""Waiting for a transaction's commit: a callback per transaction (`Node.on_commit`), with the
futures of embedded callers and the awaitables of the HTTP door built on it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from chain.node import Node
from chain.tx import Tx


def _anchor(sign: Callable[..., Tx], key: Any, n: int) -> Tx:
    return sign(key, "anchors", "anchor", {"root": f"{n:064x}", "count": 1, "label": "w"})


def test_every_waiter_of_a_block_hears_its_receipt_even_when_one_of_them_fails(
    node: Node,
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    caplog: pytest.LogCaptureFixture,
) -> None:
    txs = [_anchor(sign, keys.agency, n) for n in range(1, 4)]
    heard: dict[str, list[dict[str, Any]]] = {tx.hash: [] for tx in txs}
    all_heard = threading.Event()

    def broken(_receipt: dict[str, Any]) -> None:
        raise RuntimeError("a waiter's own bug")

    def record(receipt: dict[str, Any]) -> None:
        heard[receipt["tx"]].append(receipt)
        if all(heard.values()):
            all_heard.set()

    node.submit(txs)
    for tx in txs:
        node.on_commit(tx.hash, broken)
        node.on_commit(tx.hash, record)
    with caplog.at_level(logging.ERROR, logger="chain.node"):
        assert all_heard.wait(10)
    assert all(len(r) == 1 and r[0]["status"] == "ok" for r in heard.values())
    assert "a commit callback failed" in caplog.text
    assert not node._waiters  # told waiters are not kept


def test_a_waiter_of_a_committed_transaction_is_told_at_once(
    node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    tx = _anchor(sign, keys.agency, 1)
    assert node.submit_and_wait(tx, timeout_s=10)["status"] == "ok"
    heard: list[dict[str, Any]] = []
    node.on_commit(tx.hash, heard.append)  # called here, before on_commit returns
    assert [r["tx"] for r in heard] == [tx.hash]
    assert node.wait(tx.hash, timeout_s=1) == heard[0]


def test_a_cancelled_waiter_hears_nothing_and_leaves_nothing_behind(
    node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    tx = _anchor(sign, keys.agency, 1)
    heard: list[dict[str, Any]] = []
    cancel = node.on_commit(tx.hash, heard.append)  # not submitted: it stays unknown
    assert tx.hash in node._waiters
    cancel()
    cancel()  # twice is harmless
    assert tx.hash not in node._waiters
    future = node.wait_future(tx.hash)
    future.cancel()  # an embedded caller giving up forgets its waiter too
    assert tx.hash not in node._waiters
    node.submit_and_wait(tx, timeout_s=10)
    assert heard == []


def test_waits_that_time_out_leave_no_waiter_behind(
    node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    tx = _anchor(sign, keys.agency, 1)  # never submitted: no commit comes
    assert node.wait(tx.hash, timeout_s=0.05) is None
    assert asyncio.run(node.wait_async(tx.hash, timeout_s=0.05)) is None
    assert not node._waiters


def test_an_awaited_commit_arrives_on_the_waiting_loop(
    node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    tx = _anchor(sign, keys.agency, 1)

    async def submit_then_wait() -> tuple[dict[str, Any] | None, bool]:
        waiting = asyncio.ensure_future(node.wait_async(tx.hash, timeout_s=10))
        await asyncio.sleep(0)  # registered before the submission
        node.submit([tx])
        receipt = await waiting
        return receipt, not node._waiters

    receipt, none_left = asyncio.run(submit_then_wait())
    assert receipt is not None and receipt["tx"] == tx.hash and receipt["status"] == "ok"
    assert none_left
