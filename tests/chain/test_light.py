"""Offline proof bundles: they verify from the genesis alone, and any tampering makes them fail."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from chain import merkle
from chain.errors import ProofError
from chain.genesis import Genesis, parse_genesis
from chain.ledger import Ledger
from chain.light import verify_bundle
from chain.tx import Tx

from .test_contracts import commit

RECORDS = [bytes([i]) * 32 for i in range(5)]


@pytest.fixture
def bundles(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> dict[str, dict[str, Any]]:
    root = merkle.root(RECORDS).hex()
    anchor = sign(
        keys.agency,
        "anchors",
        "anchor",
        {"root": root, "count": len(RECORDS), "label": "deeds", "metadata": {"office": "north"}},
    )
    other = sign(keys.bank, "anchors", "anchor", {"root": "cd" * 32, "count": 1, "label": "x"})
    failed = sign(keys.agency, "anchors", "anchor", {"root": root, "count": 5, "label": "dup"})
    commit(ledger, keys.validator, [other, anchor, failed])
    tx_bundle = ledger.tx_proof(anchor.hash)
    assert tx_bundle is not None
    leaves = [merkle.leaf_hash(r) for r in RECORDS]
    record = {
        "hash": RECORDS[3].hex(),
        "index": 3,
        "size": 5,
        "path": [p.hex() for p in merkle.audit_path(leaves, 3)],
    }
    failed_bundle = ledger.tx_proof(failed.hash)
    assert failed_bundle is not None
    return {
        "tx": tx_bundle,
        "failed_tx": failed_bundle,
        "record": {**tx_bundle, "kind": "record", "record": record},
        "state": ledger.state_proof("anchors", f"root:city-agency:{root}"),
        "absent": ledger.state_proof("anchors", "root:nothing"),
    }


def test_each_kind_verifies_and_says_what_it_proves(
    bundles: dict[str, dict[str, Any]], genesis: Genesis
) -> None:
    assert "anchors.anchor, ok" in verify_bundle(bundles["tx"], genesis).summary
    assert "anchors.anchor, failed" in verify_bundle(bundles["failed_tx"], genesis).summary
    proven = verify_bundle(bundles["record"], genesis)
    assert proven.facts["record"] == RECORDS[3].hex() and proven.facts["label"] == "deeds"
    assert "is in batch 'deeds' of 5 records" in proven.summary
    assert verify_bundle(bundles["state"], genesis).facts["present"] is True
    absent = verify_bundle(bundles["absent"], genesis)
    assert absent.facts["present"] is False and "is absent" in absent.summary


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar in a JSON document with its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def mutations(value: Any) -> list[Any]:
    """Changes a forger might try on one scalar."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, str):
        flipped = ("1" if value[:1] == "0" else "0") + value[1:]
        swapped = value[:-1] + ("a" if value[-1:] != "a" else "b")
        return [flipped, swapped, value.upper() if value != value.upper() else value + "x"]
    if value is None:
        return ["x", 0]
    return [None]


def set_at(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    tampered = copy.deepcopy(document)
    target: Any = tampered
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return tampered


@pytest.mark.parametrize("kind", ["tx", "failed_tx", "record", "state", "absent"])
def test_changing_any_field_of_a_bundle_makes_it_fail(
    kind: str, bundles: dict[str, dict[str, Any]], genesis: Genesis
) -> None:
    bundle = bundles[kind]
    checked = 0
    for path, value in leaves(bundle):
        for changed in mutations(value):
            if changed == value:
                continue
            if kind == "absent" and path in (("namespace",), ("key",)):
                # An absence proof also proves, truthfully, the absence of any other key whose path
                # ends in the same empty branch; the verifier then reports the key it proved.
                try:
                    proven = verify_bundle(set_at(bundle, path, changed), genesis)
                except ProofError:
                    continue
                assert proven.facts[path[0]] == changed and proven.facts["present"] is False
                continue
            with pytest.raises(ProofError):
                verify_bundle(set_at(bundle, path, changed), genesis)
                pytest.fail(f"{'.'.join(map(str, path))} = {changed!r} still verifies")
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("kind", ["tx", "record", "state"])
def test_removing_or_duplicating_parts_makes_it_fail(
    kind: str, bundles: dict[str, dict[str, Any]], genesis: Genesis
) -> None:
    bundle = bundles[kind]
    for key in bundle:
        with pytest.raises(ProofError):
            verify_bundle({k: v for k, v in bundle.items() if k != key}, genesis)
    sigs = bundle["certificate"]["signatures"]
    with pytest.raises(ProofError, match="signed twice"):
        verify_bundle(set_at(bundle, ("certificate", "signatures"), sigs + sigs), genesis)
    with pytest.raises(ProofError, match="voting power 0"):
        verify_bundle(set_at(bundle, ("certificate", "signatures"), []), genesis)
    with pytest.raises(ProofError, match="exactly the fields"):
        verify_bundle({**bundle, "note": "trust me"}, genesis)


def test_a_bundle_from_another_chain_fails(
    bundles: dict[str, dict[str, Any]], genesis: Genesis, keys: SimpleNamespace
) -> None:
    other_validators = parse_genesis(
        {
            **genesis.to_json(),
            "validators": [{"name": "v", "pub_key": keys.outsider.public_hex, "power": 1}],
        }
    )
    with pytest.raises(ProofError, match="validator set"):
        verify_bundle(bundles["tx"], other_validators)
    renamed = parse_genesis({**genesis.to_json(), "chain_id": "another-chain"})
    with pytest.raises(ProofError, match="chain"):
        verify_bundle(bundles["tx"], renamed)
