"""Every way a transaction is refused at the door, each with its own code."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import TxRejected
from chain.ledger import Ledger
from chain.node import Node
from chain.tx import MAX_TX_BYTES, Tx, decode_tx, tx_from_canonical, tx_from_json

ROOT = "ab" * 32


def anchor_args(root: str = ROOT) -> dict[str, Any]:
    return {"root": root, "count": 1, "label": "test"}


def rejection(call: Callable[[], object]) -> TxRejected:
    with pytest.raises(TxRejected) as caught:
        call()
    return caught.value


def test_a_valid_transaction_passes_the_door(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    ledger.check_tx(sign(keys.agency, "anchors", "anchor", anchor_args()))


def test_wrong_chain_id(ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]) -> None:
    tx = sign(keys.agency, "anchors", "anchor", anchor_args(), chain_id="other-chain")
    err = rejection(lambda: ledger.check_tx(tx))
    assert (err.code, err.status) == ("wrong_chain_id", 400)
    assert "other-chain" in err.message


def test_expired_and_too_far(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    assert (
        rejection(
            lambda: ledger.check_tx(
                sign(keys.agency, "anchors", "anchor", anchor_args(), expiry_height=0)
            )
        ).code
        == "tx_expired"
    )
    far = sign(keys.agency, "anchors", "anchor", anchor_args(), expiry_height=10_000_000)
    assert rejection(lambda: ledger.check_tx(far)).code == "expiry_too_far"


def test_bad_signature(ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]) -> None:
    good = sign(keys.agency, "anchors", "anchor", anchor_args())
    forged = tx_from_json({**good.to_json(), "args": anchor_args("cd" * 32)})
    err = rejection(lambda: ledger.check_tx(forged))
    assert (err.code, err.status) == ("bad_signature", 401)


def test_unknown_sender(ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]) -> None:
    err = rejection(
        lambda: ledger.check_tx(sign(keys.outsider, "anchors", "anchor", anchor_args()))
    )
    assert (err.code, err.status) == ("unknown_sender", 403)


def test_unknown_contract_method_and_bad_args(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    err = rejection(lambda: ledger.check_tx(sign(keys.agency, "lottery", "draw", {})))
    assert err.code == "unknown_contract" and "anchors" in err.message
    err = rejection(lambda: ledger.check_tx(sign(keys.agency, "anchors", "erase", {})))
    assert err.code == "unknown_method" and "anchor" in err.message
    err = rejection(
        lambda: ledger.check_tx(
            sign(keys.agency, "anchors", "anchor", {"root": "xyz", "count": 1, "label": "l"})
        )
    )
    assert err.code == "bad_args" and "root" in err.message
    err = rejection(
        lambda: ledger.check_tx(
            sign(keys.agency, "anchors", "anchor", {**anchor_args(), "count": "1"})
        )
    )
    assert err.code == "bad_args" and "count" in err.message


def test_malformed_and_oversize_on_the_wire(keys: SimpleNamespace, sign: Callable[..., Tx]) -> None:
    assert rejection(lambda: decode_tx(b"{not json")).code == "tx_malformed"
    assert rejection(lambda: decode_tx(b"[]")).code == "tx_malformed"
    body = sign(keys.agency, "anchors", "anchor", anchor_args()).to_json()
    missing = {k: v for k, v in body.items() if k != "nonce"}
    assert "nonce" in rejection(lambda: decode_tx(json.dumps(missing).encode())).message
    assert (
        rejection(lambda: decode_tx(json.dumps({**body, "nonce": -1}).encode())).code
        == "tx_malformed"
    )
    assert (
        rejection(lambda: decode_tx(json.dumps({**body, "sender": "AB" * 32}).encode())).code
        == "tx_malformed"
    )
    assert (
        rejection(lambda: decode_tx(json.dumps({**body, "extra": 1}).encode())).code
        == "tx_malformed"
    )
    huge = json.dumps({**body, "args": {"blob": "x" * MAX_TX_BYTES}}).encode()
    err = rejection(lambda: decode_tx(huge))
    assert (err.code, err.status) == ("tx_too_large", 413)


def test_replay_of_a_committed_transaction(
    node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    tx = sign(keys.agency, "anchors", "anchor", anchor_args())
    receipt = node.submit_and_wait(tx, timeout_s=10)
    assert receipt["status"] == "ok"
    err = rejection(lambda: node.submit([tx]))
    assert (err.code, err.status) == ("tx_replayed", 409)


def test_resubmitting_a_pending_transaction_is_idempotent(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    node = Node(ledger, key=keys.validator)  # not started: transactions stay pending
    tx = sign(keys.agency, "anchors", "anchor", anchor_args())
    assert [a.duplicate for a in node.submit([tx])] == [False]
    assert [a.duplicate for a in node.submit([tx])] == [True]
    assert len(node.mempool) == 1


def test_a_full_mempool_refuses_with_429_and_keeps_what_it_has(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    from chain.node import NodeOptions

    node = Node(ledger, key=keys.validator, options=NodeOptions(mempool_capacity=2))
    node.submit(
        [sign(keys.agency, "anchors", "anchor", anchor_args(f"{i:064x}")) for i in range(2)]
    )
    err = rejection(
        lambda: node.submit([sign(keys.agency, "anchors", "anchor", anchor_args("ee" * 32))])
    )
    assert (err.code, err.status) == ("mempool_full", 429)
    assert len(node.mempool) == 2


def test_a_quiet_spell_does_not_lower_the_admission_limit_a_burst_then_meets(
    ledger: Ledger,
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The door admits about two seconds of the commit rate the node has shown while busy.
    A quiet spell (an empty block after seconds with nothing pending) says nothing of that
    rate; it set the estimate to zero, so the next burst met 429s at the floor."""
    import time

    from chain import node as node_module
    from chain.node import NodeOptions

    clock = [100.0]
    monkeypatch.setattr(
        node_module, "time", SimpleNamespace(monotonic=lambda: clock[0], time=time.time)
    )
    node = Node(ledger, key=keys.validator, options=NodeOptions(max_block_txs=100, admit_floor=10))
    roots = iter(f"{i:064x}" for i in range(10_000))

    def batch(n: int) -> list[Tx]:
        return [sign(keys.agency, "anchors", "anchor", anchor_args(next(roots))) for _ in range(n)]

    node.submit(batch(500))
    for _ in range(5):  # busy: each block of 100 leaves more pending, one a second
        node.produce_block()
        clock[0] += 1.0
    learned = node.admission_limit()
    assert learned > 10 * 4  # about two seconds of what it committed while busy

    clock[0] += 30.0  # a quiet spell: nothing pending, then an empty block
    node.produce_block(allow_empty=True)
    assert node.admission_limit() == learned

    while len(node.mempool) < learned:  # a burst, ten at a time: admitted up to the limit
        node.submit(batch(10))
    err = rejection(lambda: node.submit(batch(10)))
    assert (err.code, err.status) == ("mempool_full", 429)


def test_wire_oddities_are_malformed_not_crashes(
    keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    body = sign(keys.agency, "anchors", "anchor", anchor_args()).to_json()
    huge_int = json.dumps({**body, "args": {**body["args"], "count": 2**60}}).encode()
    assert rejection(lambda: decode_tx(huge_int)).code == "tx_malformed"
    assert rejection(lambda: decode_tx(json.dumps(body).encode("utf-16"))).code == "tx_malformed"
    assert (
        rejection(lambda: decode_tx(b"\xef\xbb\xbf" + json.dumps(body).encode())).code
        == "tx_malformed"
    )
    lone = json.dumps({**body, "args": {"label": "\ud800"}}).encode()
    assert rejection(lambda: decode_tx(lone)).code == "tx_malformed"


def test_args_execute_in_their_canonical_form(
    keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    body = sign(keys.agency, "anchors", "anchor", anchor_args()).to_json()
    as_float = json.loads(json.dumps(body).replace('"count": 1', '"count": 1.0'))
    tx = tx_from_json(as_float)
    assert tx.args["count"] == 1 and isinstance(tx.args["count"], int)
    assert tx.has_valid_signature()


def test_small_order_keys_can_never_sign_or_be_registered(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    from chain.crypto import verify
    from chain.errors import GenesisError
    from chain.genesis import parse_genesis

    identity = "01" + "00" * 31
    assert not verify(identity, b"anything", bytes.fromhex("01" + "00" * 63))
    with pytest.raises(GenesisError, match="usable Ed25519"):
        parse_genesis(
            {
                "chain_id": "x-chain",
                "genesis_time_ms": 0,
                "validators": [{"name": "v", "pub_key": identity}],
            }
        )
    node = Node(ledger, key=keys.validator)
    node.submit([sign(keys.bank, "membership", "add_key", {"pub_key": identity})])
    receipt = node.produce_block()
    assert receipt is not None and receipt.receipts[0].code == "bad_key"


def test_a_waiter_for_a_committed_transaction_still_in_the_mempool_gets_its_receipt(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    """A copy can reach the mempool just after its block committed (the door checked it just
    before): waiting on it must find the receipt in the store, not wait for a commit to come."""
    from chain.node import NodeOptions

    node = Node(ledger, key=keys.validator, options=NodeOptions(block_interval_ms=0))
    node.produce_block(allow_empty=True)
    tx = sign(keys.agency, "anchors", "anchor", anchor_args())
    ledger.check_tx(tx)  # the door's check passes ...
    node.mempool.add([tx], gossip=False)
    node.produce_block()  # ... the block with it commits ...
    node.mempool.add([tx])  # ... and then the door's copy lands
    assert tx.hash in node.mempool
    receipt = node.wait(tx.hash, 1.0)
    assert receipt is not None and receipt["status"] == "ok"


def test_a_peer_s_transaction_is_taken_only_as_its_canonical_bytes(
    keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    """Gossip and proposal fetches carry canonical bytes: those give back the signed tx with
    the same bytes and hash; any other writing of it is refused by name, however it is read."""
    tx = sign(keys.agency, "anchors", "anchor", {**anchor_args(), "label": "caf\u00e9 \u2028"})
    received = tx_from_canonical(tx.encode())
    assert received.encode() == tx.encode() and received.hash == tx.hash
    assert received.to_json() == tx.to_json() and received.has_valid_signature()
    body = tx.to_json()
    for raw in (
        json.dumps(body).encode(),  # whitespace, escaped non-ASCII
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),  # escaped non-ASCII
        json.dumps(
            dict(reversed(body.items())), separators=(",", ":"), ensure_ascii=False
        ).encode(),  # unsorted
        tx.encode().replace(b'"count":1', b'"count":1.0'),  # signed as 1
        tx.encode().replace(b'{"args":', b'{"nonce":1,"args":', 1),  # a duplicate member
    ):
        with pytest.raises(TxRejected) as caught:
            tx_from_canonical(raw)
        assert caught.value.code == "tx_not_canonical", raw
    assert rejection(lambda: tx_from_canonical(b"[]")).code == "tx_malformed"
    wrong = tx.encode().replace(b'"sig":"', b'"sig":"A', 1)  # not lowercase hex
    assert rejection(lambda: tx_from_canonical(wrong)).code == "tx_malformed"


@pytest.mark.parametrize("number", [1e16, 2.0**53, -1e20, 1e21 - 2**17])
def test_a_number_whose_canonical_form_peers_cannot_read_is_malformed_at_the_door(
    keys: SimpleNamespace, sign: Callable[..., Tx], number: float
) -> None:
    """An integral float from 2^53 on is written as an integer past 2^53, which no node may
    read back: admitted at the door, it would be refused by every peer and block a restart."""
    body = sign(keys.agency, "anchors", "anchor", anchor_args()).to_json()
    body["args"] = {**body["args"], "metadata": {"n": number}}
    assert rejection(lambda: tx_from_json(body)).code == "tx_malformed"
    assert rejection(lambda: decode_tx(json.dumps(body).encode())).code == "tx_malformed"


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(args=st.dictionaries(st.text(max_size=6), _json_value, max_size=5))
def test_every_transaction_the_door_admits_a_peer_reads_back_the_same(
    args: dict[str, Any],
) -> None:
    body = {
        "chain_id": "c",
        "sender": "ab" * 32,
        "contract": "anchors",
        "method": "anchor",
        "args": args,
        "nonce": 1,
        "expiry_height": 10,
        "sig": "cd" * 64,
    }
    try:
        tx = tx_from_json(body)
    except TxRejected as refused:
        code = refused.code
        tx = None
    if tx is None:
        assert code in ("tx_malformed", "tx_too_large")
        return
    received = tx_from_canonical(tx.encode())
    assert received.hash == tx.hash and received.encode() == tx.encode()
    assert received.args == tx.args
