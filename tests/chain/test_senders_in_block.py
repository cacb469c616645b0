"""A block's transactions see the membership changes of the transactions before them."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from chain.crypto import SigningKey
from chain.ledger import Ledger
from chain.tx import Tx
from tests.chain.test_contracts import commit


def test_a_key_revoked_earlier_in_the_block_cannot_send_later_in_it(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    second = SigningKey.from_seed(b"s" * 32)
    added = commit(
        ledger,
        keys.validator,
        [sign(keys.bank, "membership", "add_key", {"pub_key": second.public_hex})],
    )
    assert added.receipts[0].ok
    anchor = {"count": 1, "label": "x"}
    block = commit(
        ledger,
        keys.validator,
        [
            sign(keys.bank, "anchors", "anchor", {**anchor, "root": "ab" * 32}),
            sign(second, "membership", "revoke_key", {"pub_key": keys.bank.public_hex}),
            sign(keys.bank, "anchors", "anchor", {**anchor, "root": "cd" * 32}),
            sign(second, "anchors", "anchor", {**anchor, "root": "ef" * 32}),
        ],
    )
    outcome = [(r.ok, r.code) for r in block.receipts]
    # the bank's key sent before its revocation, not after; the organisation's other key still may
    assert outcome == [(True, None), (True, None), (False, "unknown_sender"), (True, None)]
    assert ledger.read("anchors", f"root:bank-a:{'cd' * 32}") is None
