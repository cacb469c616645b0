"""Offline verification of proof bundles, given only the genesis document.

A bundle proves a transaction (with its receipt), a record anchored in a batch, or a state value
(or its absence) against a block header certified by more than 2/3 of the validators.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chain import merkle, smt
from chain.block import Certificate, Header, validators_hash, verify_certificate
from chain.encoding import canonical, from_hex
from chain.errors import ChainError, ProofError
from chain.genesis import Genesis
from chain.state import key_hash, value_hash
from chain.tx import tx_from_json

BUNDLE_VERSION = 1
_TX_FIELDS = {
    "version",
    "kind",
    "chain_id",
    "tx",
    "tx_proof",
    "receipt",
    "receipt_proof",
    "header",
    "certificate",
    "validator_transitions",
}
_FIELDS = {
    "tx": _TX_FIELDS,
    "record": _TX_FIELDS | {"record"},
    "state": {
        "version",
        "kind",
        "chain_id",
        "namespace",
        "key",
        "value",
        "state_proof",
        "header",
        "certificate",
        "validator_transitions",
    },
}


@dataclass(frozen=True)
class Proven:
    """What a bundle proved, in words and in fields."""

    kind: str
    height: int
    block_hash: str
    summary: str
    facts: dict[str, Any]


def verify_bundle(bundle: Any, genesis: Genesis) -> Proven:
    """Verify a bundle end to end or raise ProofError saying what failed."""
    try:
        return _verify(bundle, genesis)
    except ProofError:
        raise
    except (ChainError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProofError(f"malformed bundle: {exc}") from exc


def _verify(bundle: Any, genesis: Genesis) -> Proven:
    # Verify the bundle's shape, version and chain
    if not isinstance(bundle, dict):
        raise ProofError("a bundle is a JSON object")
    kind = bundle.get("kind")
    if kind not in _FIELDS:
        raise ProofError(f"unknown bundle kind {kind!r}; expected one of {sorted(_FIELDS)}")
    if set(bundle) != _FIELDS[kind]:
        raise ProofError(f"a {kind} bundle has exactly the fields {sorted(_FIELDS[kind])}")
    if type(bundle["version"]) is not int or bundle["version"] != BUNDLE_VERSION:
        raise ProofError(f"unsupported bundle version {bundle['version']!r}")
    if bundle["chain_id"] != genesis.chain_id:
        raise ProofError(
            f"bundle is for chain {bundle['chain_id']!r}, genesis is {genesis.chain_id!r}"
        )
    header = _verified_header(bundle, genesis)
    if kind == "state":
        return _verify_state(bundle, header)
    return _verify_tx(bundle, header, record=kind == "record")


def _verified_header(bundle: dict[str, Any], genesis: Genesis) -> Header:
    header = Header.from_json(bundle["header"])
    # Verify the header belongs to this chain
    if header.chain_id != genesis.chain_id:
        raise ProofError(f"header is for chain {header.chain_id!r}")
    powers = _follow_transitions(bundle["validator_transitions"], genesis, before=header.height)
    # Verify the header names the validator set reached from genesis, and that set signed it
    if header.validators_hash != _set_hash(powers):
        raise ProofError("the header's validator set is not the one the transitions lead to")
    certificate = Certificate.from_json(bundle["certificate"])
    verify_certificate(certificate, header, powers)
    return header


def _follow_transitions(transitions: Any, genesis: Genesis, *, before: int) -> dict[str, int]:
    """Walk certified validator-set changes from the genesis set; return the set in force."""
    if not isinstance(transitions, list):
        raise ProofError("validator_transitions must be a list")
    powers = genesis.validator_powers()
    last = 0
    for step in transitions:
        if not isinstance(step, dict) or set(step) != {"header", "certificate", "validators"}:
            raise ProofError("a validator transition has exactly header, certificate, validators")
        header = Header.from_json(step["header"])
        # Verify transitions are in height order, on this chain, before the proven block
        if not last < header.height < before or header.chain_id != genesis.chain_id:
            raise ProofError(
                "validator transitions must be of this chain, ascending, before the block"
            )
        # Verify the set in force signed it, and it commits to the next set it announces
        if header.validators_hash != _set_hash(powers):
            raise ProofError(f"transition at {header.height} is not signed by the set in force")
        verify_certificate(Certificate.from_json(step["certificate"]), header, powers)
        validators = step["validators"]
        if (
            not isinstance(validators, list)
            or validators_hash(validators) != header.next_validators_hash
        ):
            raise ProofError(f"transition at {header.height} announces another validator set")
        powers = {str(v["pub_key"]): int(v["power"]) for v in validators}
        last = header.height
    return powers


def _set_hash(powers: dict[str, int]) -> str:
    return validators_hash([{"pub_key": k, "power": p} for k, p in powers.items()])


def _verify_tx(bundle: dict[str, Any], header: Header, *, record: bool) -> Proven:
    tx_json, receipt_json = bundle["tx"], bundle["receipt"]
    tx = tx_from_json(tx_json)
    # Verify the transaction is in the block, signed by its sender
    _check_path(
        canonical(tx_json), bundle["tx_proof"], header.txs_root, header.tx_count, "transaction"
    )
    if not tx.has_valid_signature():
        raise ProofError("the transaction's signature does not verify")
    # Verify the receipt is the block's receipt for this transaction
    _check_path(
        canonical(receipt_json),
        bundle["receipt_proof"],
        header.receipts_root,
        header.tx_count,
        "receipt",
    )
    if receipt_json["tx"] != tx.hash or receipt_json["height"] != header.height:
        raise ProofError("the receipt is for another transaction or block")
    if (
        receipt_json["index"] != bundle["tx_proof"]["index"]
        or bundle["receipt_proof"]["index"] != receipt_json["index"]
    ):
        raise ProofError("the receipt and the transaction sit at different positions")
    facts: dict[str, Any] = {
        "tx": tx.hash,
        "sender": tx.sender,
        "contract": tx.contract,
        "method": tx.method,
        "status": receipt_json["status"],
        "height": header.height,
        "time": _iso(header.time_ms),
    }
    summary = (
        f"transaction {tx.hash} ({tx.contract}.{tx.method}, {receipt_json['status']}) is in block"
        f" {header.height} of {header.chain_id}, committed {_iso(header.time_ms)}"
    )
    if record:
        facts |= _verify_record(
            bundle["record"], tx.contract, tx.method, tx.args, receipt_json["status"]
        )
        summary = (
            f"record {facts['record']} is in batch {facts['label']!r} of {facts['count']} records,"
            f" anchored by transaction {tx.hash} in block {header.height} of {header.chain_id},"
            f" committed {_iso(header.time_ms)}"
        )
    return Proven(bundle["kind"], header.height, header.hash, summary, facts)


def _verify_record(
    record: Any, contract: str, method: str, args: dict[str, Any], status: str
) -> dict[str, Any]:
    if not isinstance(record, dict) or set(record) != {"hash", "index", "size", "path"}:
        raise ProofError("record must have hash, index, size, path")
    # Verify the transaction is a successful anchor whose root includes the record
    if (contract, method) != ("anchors", "anchor"):
        raise ProofError("the transaction is not an anchor")
    if status != "ok":
        raise ProofError("the anchor transaction failed")
    record_hash = from_hex(record["hash"], 32, field="record hash")
    _check_path(record_hash, record, args["root"], args["count"], "record")
    return {
        "record": record["hash"],
        "batch_root": args["root"],
        "count": args["count"],
        "label": args["label"],
    }


def _verify_state(bundle: dict[str, Any], header: Header) -> Proven:
    namespace, key, value = bundle["namespace"], bundle["key"], bundle["value"]
    if not isinstance(namespace, str) or not isinstance(key, str):
        raise ProofError("namespace and key must be strings")
    proof_json = bundle["state_proof"]
    if not isinstance(proof_json, dict) or set(proof_json) != {"siblings", "leaf"}:
        raise ProofError("state_proof must have siblings and leaf")
    if not isinstance(proof_json["siblings"], list) or len(proof_json["siblings"]) > smt.KEY_BITS:
        raise ProofError(f"state_proof siblings must be a list of at most {smt.KEY_BITS}")
    siblings = [from_hex(s, 32, field="sibling") for s in proof_json["siblings"]]
    leaf_json = proof_json["leaf"]
    leaf = None
    if leaf_json is not None:
        if set(leaf_json) != {"key_hash", "value_hash"}:
            raise ProofError("state leaf must have key_hash and value_hash")
        leaf = smt.Leaf(
            from_hex(leaf_json["key_hash"], 32, field="key_hash"),
            from_hex(leaf_json["value_hash"], 32, field="value_hash"),
        )
    path = key_hash(namespace, key)
    root = smt.compute_root(path, smt.StateProof(siblings, leaf))
    # Verify the proof reaches the header's state root
    if root.hex() != header.state_root:
        raise ProofError("the state proof does not reach the header's state root")
    present = leaf is not None and leaf.key_hash == path
    # Verify the claimed value matches what the proof shows
    if value is None and present:
        raise ProofError("the bundle claims absence but the key is present")
    if value is not None and (not present or leaf is None or leaf.value_hash != value_hash(value)):
        raise ProofError("the bundle's value is not the proven value")
    where = f"{namespace}/{key}"
    summary = (
        (f"{where} = {canonical(value).decode()[:200]}" if present else f"{where} is absent")
        + f" in the state after block {header.height} of {header.chain_id},"
        + f" committed {_iso(header.time_ms)}"
    )
    facts = {
        "namespace": namespace,
        "key": key,
        "present": present,
        "value": value,
        "height": header.height,
    }
    return Proven("state", header.height, header.hash, summary, facts)


def _check_path(leaf_data: bytes, proof: Any, root_hex: str, size: int, what: str) -> None:
    if (
        not isinstance(proof, dict)
        or set(proof) - {"hash"} != {"index", "size", "path"}
        or (what != "record" and "hash" in proof)
    ):
        raise ProofError(f"{what} proof must have index, size, path")
    index, proof_size = proof["index"], proof["size"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, proof_size, size)):
        raise ProofError(f"{what} proof index and size must be integers")
    # Verify the proof is for a tree of the committed size
    if proof_size != size:
        raise ProofError(
            f"{what} proof is for a tree of {proof_size}, the committed tree has {size}"
        )
    if not isinstance(proof["path"], list):
        raise ProofError(f"{what} proof path must be a list")
    path = [from_hex(p, 32, field=f"{what} path") for p in proof["path"]]
    computed = merkle.root_from_path(merkle.leaf_hash(leaf_data), index, size, path)
    if computed != from_hex(root_hex, 32, field=f"{what} root"):
        raise ProofError(f"the {what} is not in the committed Merkle tree")


def record_hash_of_file(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
