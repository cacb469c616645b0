"""One contract for the ledger port, run against the embedded chain and a remote node."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chain.api import create_app
from chain.client import ChainClient, Identity
from chain.errors import ChainError, TxRejected
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.light import verify_bundle
from chain.node import Node, NodeOptions
from chain.reads import MAX_READ_KEYS
from chain.suites import SuiteKey
from chain.tx import Tx, sign_tx
from services.common.errors import install_error_handlers
from services.common.ledger import EmbeddedLedger, LedgerPort, RemoteLedger, call


@pytest.fixture(params=["embedded", "remote"])
def port(
    request: pytest.FixtureRequest,
    node: Node,
    keys: SimpleNamespace,
    live_server: Callable[[Any], Any],
) -> Iterator[LedgerPort]:
    if request.param == "embedded":
        yield EmbeddedLedger(node)
        return
    with (
        live_server(create_app(node)) as server,
        ChainClient(server.url, identity=Identity("regulator", keys.regulator)) as client,
    ):
        yield RemoteLedger(client, node.ledger.genesis)


def test_call_commits_and_reads_back(port: LedgerPort, keys: SimpleNamespace) -> None:
    receipt = call(
        port, keys.agency, "anchors", "anchor", {"root": "ab" * 32, "count": 1, "label": "x"}
    )
    assert receipt["status"] == "ok"
    assert port.read("anchors", f"root:city-agency:{'ab' * 32}") == receipt["tx"]
    assert port.height() >= 1


def test_many_keys_read_as_one_read_each(port: LedgerPort, keys: SimpleNamespace) -> None:
    roots = [f"{i:064x}" for i in range(1, 4)]
    for root in roots:
        call(port, keys.agency, "anchors", "anchor", {"root": root, "count": 1, "label": "x"})
    present = [f"root:city-agency:{root}" for root in roots]
    # More keys than one request of a remote port takes: it reads them in a few requests
    wanted = [*present, *(f"root:none:{i}" for i in range(MAX_READ_KEYS)), present[0]]
    values = port.read_many("anchors", wanted)
    assert len(values) == len(wanted)
    # Each as its own read gives: the present keys, and absent ones on both sides of where a
    # remote port splits its requests (4,100 single reads over HTTP took 12 s of the suite)
    sampled = [0, 1, 2, 3, MAX_READ_KEYS - 1, MAX_READ_KEYS, MAX_READ_KEYS + 1, len(wanted) - 1]
    assert [values[i] for i in sampled] == [port.read("anchors", wanted[i]) for i in sampled]
    assert values[:3] != [None] * 3 and values[-1] == values[0]
    assert values[3:-1] == [None] * MAX_READ_KEYS  # no key of an absent org was ever written
    assert port.read_many("anchors", []) == []
    # A key no contract can write is refused alike through either port
    with pytest.raises(ChainError) as caught:
        port.read_many("anchors", ["fine", "not\nfine"])
    assert getattr(caught.value, "code", None) == "bad_key"


def test_proofs_verify_offline(port: LedgerPort, keys: SimpleNamespace, genesis: Genesis) -> None:
    receipt = call(
        port, keys.agency, "anchors", "anchor", {"root": "cd" * 32, "count": 1, "label": "x"}
    )
    bundle = port.tx_proof(receipt["tx"])
    assert bundle is not None and verify_bundle(bundle, genesis).facts["tx"] == receipt["tx"]
    assert verify_bundle(
        port.state_proof("anchors", f"root:city-agency:{'cd' * 32}"), genesis
    ).facts["present"]
    assert port.tx_proof("00" * 32) is None


def test_resolve_key_gives_org_and_roles(port: LedgerPort, keys: SimpleNamespace) -> None:
    assert port.resolve_key(keys.bank.public_hex) == ("bank-a", frozenset({"bank"}))
    assert port.resolve_key(keys.outsider.public_hex) is None


def test_rejections_keep_their_code(port: LedgerPort, keys: SimpleNamespace) -> None:
    with pytest.raises(TxRejected) as caught:
        call(
            port, keys.outsider, "anchors", "anchor", {"root": "ef" * 32, "count": 1, "label": "x"}
        )
    assert caught.value.code == "unknown_sender"
    tx = sign_tx(
        keys.agency,
        chain_id=port.genesis.chain_id,
        contract="anchors",
        method="anchor",
        args={"root": "12" * 32, "count": 1, "label": "x"},
        expiry_height=port.height() + 10,
    )
    hashes = port.submit_many([tx])
    assert hashes == [tx.hash]
    assert port.submit(tx, wait=True)["status"] == "ok"


def test_a_refused_item_of_a_batch_keeps_its_status(
    port: LedgerPort, keys: SimpleNamespace
) -> None:
    def anchor(key: SuiteKey, root: str) -> Tx:
        args = {"root": root, "count": 1, "label": "x"}
        return sign_tx(
            key,
            chain_id=port.genesis.chain_id,
            contract="anchors",
            method="anchor",
            args=args,
            expiry_height=port.height() + 10,
        )

    # An unregistered sender is 403 in a batch as alone (a 400 would read as a malformed call)
    with pytest.raises(TxRejected) as caught:
        port.submit_many([anchor(keys.agency, "34" * 32), anchor(keys.outsider, "56" * 32)])
    assert (caught.value.code, caught.value.status) == ("unknown_sender", 403)


def test_a_full_mempool_answers_429_with_retry_after_through_the_port(
    port: LedgerPort, keys: SimpleNamespace, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isinstance(port, RemoteLedger):
        port.client.busy_retry_s = 0  # raise the node's 429 at once instead of waiting it out

    def full() -> None:
        raise TxRejected("mempool_full", "1000 transactions pending: retry shortly", status=429)

    monkeypatch.setattr(node, "check_admission", full)
    tx = sign_tx(
        keys.agency,
        chain_id=port.genesis.chain_id,
        contract="anchors",
        method="anchor",
        args={"root": "78" * 32, "count": 1, "label": "x"},
        expiry_height=port.height() + 10,
    )
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/submit")
    def submit() -> list[str]:
        return port.submit_many([tx])

    answer = TestClient(app).post("/submit")
    # A service passes the chain's push-back on: retry later, not "chain unavailable" (503)
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "mempool_full"
    assert answer.headers["retry-after"] == "1"


@pytest.mark.parametrize("kind", ["embedded", "remote"])
def test_receipts_of_a_batch_that_filled_the_mempool_are_not_refused(
    ledger: Ledger, keys: SimpleNamespace, live_server: Callable[[Any], Any], kind: str
) -> None:
    # The door admits a batch whole even when it carries the backlog past the limit; waiting for
    # that batch's receipts submitted it again through the door, which answered 429 for
    # transactions already admitted (road health's confirmations: the ingest rolled back)
    node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0, admit_floor=3))
    txs = [
        sign_tx(
            keys.agency,
            chain_id=ledger.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{i:02x}" * 32, "count": 1, "label": "x"},
            expiry_height=ledger.height + 10,
        )
        for i in range(0xA0, 0xA5)
    ]
    with contextlib.ExitStack() as stack:
        port: LedgerPort = EmbeddedLedger(node)
        if kind == "remote":
            server = stack.enter_context(live_server(create_app(node)))
            client = ChainClient(
                server.url, identity=Identity("regulator", keys.regulator), busy_retry_s=0
            )
            port = RemoteLedger(stack.enter_context(client), ledger.genesis)
        port.submit_many(txs[:4])  # 0 pending: admitted whole, 4 pending over a limit of 3
        with pytest.raises(TxRejected) as refused:
            port.submit_many(txs[4:])  # a new transaction is refused
        assert (refused.value.status, refused.value.code) == (429, "mempool_full")
        block = threading.Timer(0.3, node.produce_block)  # the node is not started: by hand
        block.start()
        receipts = port.receipts(txs[:4], timeout_s=5)
        block.join()
    assert [r["tx"] for r in receipts] == [tx.hash for tx in txs[:4]]
    assert all(r["status"] == "ok" for r in receipts)


def test_a_node_out_of_reach_is_the_chain_unavailable_for_writes_as_for_reads(
    genesis: Genesis, keys: SimpleNamespace
) -> None:
    # A write through an unreachable node answered an undeclared 502 node_error, a read 503
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gone = probe.getsockname()[1]  # nothing listens once the probe closes
    port = RemoteLedger(ChainClient(f"http://127.0.0.1:{gone}"), genesis)
    tx = sign_tx(
        keys.agency,
        chain_id=genesis.chain_id,
        contract="anchors",
        method="anchor",
        args={"root": "ab" * 32, "count": 1, "label": "x"},
        expiry_height=5,
    )
    app = FastAPI()
    install_error_handlers(app)
    app.post("/many")(lambda: port.submit_many([tx]))
    app.post("/one")(lambda: port.submit(tx))
    app.post("/receipts")(lambda: port.receipts([tx], timeout_s=1))
    app.get("/read")(lambda: port.read("anchors", "x"))
    client = TestClient(app, raise_server_exceptions=False)
    for answer in (client.post(p) for p in ("/many", "/one", "/receipts")):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "chain_unavailable"
        assert answer.headers["retry-after"] == "1"
    read = client.get("/read")
    assert (read.status_code, read.json()["error"]["code"]) == (503, "chain_unavailable")


def test_receipts_of_a_batch_come_in_order(port: LedgerPort, keys: SimpleNamespace) -> None:
    expiry = port.height() + 10
    txs = [
        sign_tx(
            keys.agency,
            chain_id=port.genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{i:02x}" * 32, "count": 1, "label": "x"},
            expiry_height=expiry,
        )
        for i in range(0x90, 0x95)
    ]
    port.submit_many(txs)
    receipts = port.receipts(txs)
    assert [r["tx"] for r in receipts] == [tx.hash for tx in txs]
    assert all(r["status"] == "ok" for r in receipts)
    assert port.receipts([]) == []


def test_remote_receipts_wait_for_one_not_yet_in_a_block(
    keys: SimpleNamespace, genesis: Genesis
) -> None:
    txs = [
        sign_tx(
            keys.agency,
            chain_id=genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{i:02x}" * 32, "count": 1, "label": "x"},
            expiry_height=10,
        )
        for i in (0xA0, 0xA1, 0xA2, 0xA3)
    ]
    # The node has committed the first, holds the second pending, has lost the third
    by_sig = {tx.sig: tx.hash for tx in txs}
    waited: list[str] = []

    def answer(tx_hash: str, height: int) -> httpx.Response:
        receipt = {"tx": tx_hash, "status": "ok", "height": height}
        return httpx.Response(
            200, json={"hash": tx_hash, "status": "committed", "receipt": receipt}
        )

    def node(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # a submission that waits for its commit
            waited.append(by_sig[json.loads(request.content)["sig"]])
            return answer(waited[-1], 2)
        tx_hash = request.url.path.rsplit("/", 1)[1]
        if tx_hash == txs[0].hash:
            return answer(tx_hash, 1)
        if tx_hash == txs[1].hash:
            return httpx.Response(200, json={"hash": tx_hash, "status": "pending"})
        error = {"code": "unknown_tx", "message": "no such transaction"}
        return httpx.Response(404, json={"error": error})

    client = ChainClient("http://node", transport=httpx.MockTransport(node))
    receipts = RemoteLedger(client, genesis).receipts(txs)
    assert [r["tx"] for r in receipts] == [tx.hash for tx in txs]
    # The last waited for, the first read as committed, the other two waited for as well
    assert waited == [txs[3].hash, txs[1].hash, txs[2].hash]
