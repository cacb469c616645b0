"""The shape check's memo of well-formed names and senders refuses exactly what it refused.

`chain.tx` remembers contract and method names and sender keys it found well formed (a node
sees a few of each on thousands of transactions); a string remembered as one of them must not
pass as another, and a signature is still checked on every transaction.
"""

from __future__ import annotations

import pytest

from chain.crypto import SigningKey
from chain.errors import TxRejected
from chain.tx import Tx, sign_tx, tx_from_canonical, tx_from_json

KEY = SigningKey.from_seed(bytes(range(32)))


def _body(**fields: object) -> dict[str, object]:
    tx = sign_tx(
        KEY,
        chain_id="memo-chain",
        contract="anchors",
        method="anchor",
        args={"root": "ab" * 32, "count": 1, "label": "x"},
        expiry_height=10,
        nonce=1,
    )
    return {**tx.to_json(), **fields}


def _refusal(body: dict[str, object]) -> str:
    with pytest.raises(TxRejected) as caught:
        tx_from_json(body)
    assert caught.value.code == "tx_malformed"
    return caught.value.message


def test_a_remembered_sender_is_not_taken_as_a_name_nor_a_name_as_a_sender() -> None:
    digit_key = next(
        k
        for k in (SigningKey.from_seed(bytes([i]) * 32) for i in range(64))
        if k.public_hex[0] < "a"
    )
    # the sender, contract and method of a good transaction are remembered
    assert isinstance(tx_from_json(_body(sender=digit_key.public_hex)), Tx)
    assert "contract must match" in _refusal(_body(contract=digit_key.public_hex))
    assert "method must match" in _refusal(_body(method=digit_key.public_hex))
    assert _refusal(_body(sender="anchors")) == "sender must be lowercase hex"
    assert _refusal(_body(sender="anchor" + "0" * 58)) == "sender must be lowercase hex"


def test_every_signature_is_still_checked_for_its_shape() -> None:
    good = _body()
    assert isinstance(tx_from_json(good), Tx)
    sig = str(good["sig"])
    assert _refusal(_body(sig=sig.upper())) == "sig must be lowercase hex"
    assert _refusal(_body(sig=sig[:-2])) == "sig must be 64 bytes, got 63"
    assert _refusal(_body(sig=sig + "00")) == "sig must be 64 bytes, got 65"
    assert _refusal(_body(sig=sig[:-1] + "\n")) == "sig must be lowercase hex"
    raw = tx_from_json(good).encode()
    bad = raw.replace(sig.encode(), sig.upper().encode())
    with pytest.raises(TxRejected) as caught:
        tx_from_canonical(bad)
    assert caught.value.code == "tx_malformed"


def test_names_of_the_wrong_shape_are_refused_after_good_ones() -> None:
    assert isinstance(tx_from_json(_body()), Tx)
    assert "contract must match" in _refusal(_body(contract="Anchors"))
    assert "method must match" in _refusal(_body(method="anchor-x"))
    assert "method must match" in _refusal(_body(method="a" * 65))


def test_nonce_and_expiry_height_are_integers_in_range_and_not_booleans() -> None:
    top = 2**53 - 1
    for name in ("nonce", "expiry_height"):
        for bad in (True, False, -1, top + 1, 1.0, "1", None):
            assert f"{name} must be an integer in 0..{top}" in _refusal(_body(**{name: bad}))
    assert tx_from_json(_body(nonce=top)).nonce == top
    assert tx_from_json(_body(nonce=0)).nonce == 0
