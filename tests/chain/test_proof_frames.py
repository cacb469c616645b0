"""Proofs at one height share their header, certificate and transitions, read once; each bundle
is the caller's own to change."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chain.errors import ProofError
from chain.genesis import Genesis
from chain.light import verify_bundle
from chain.node import Node
from services.common.ledger import EmbeddedLedger, call


def test_bundles_at_one_height_verify_and_do_not_share_their_parts(
    node: Node, keys: SimpleNamespace, genesis: Genesis
) -> None:
    ledger = EmbeddedLedger(node)
    receipt = call(
        ledger, keys.agency, "anchors", "anchor", {"root": "ef" * 32, "count": 1, "label": "x"}
    )
    key = f"root:city-agency:{'ef' * 32}"
    first = node.ledger.state_proof("anchors", key)
    first["header"]["state_root"] = "00" * 32  # a caller tampering with its own copy
    first["validator_transitions"].append({"forged": True})
    second = node.ledger.state_proof("anchors", key)
    assert verify_bundle(second, genesis).facts["present"]
    tx_bundle = node.ledger.tx_proof(receipt["tx"])
    assert tx_bundle is not None and verify_bundle(tx_bundle, genesis).facts["tx"] == receipt["tx"]
    with pytest.raises(ProofError):
        verify_bundle(first, genesis)
