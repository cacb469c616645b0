"""Offline verification of proof bundles from the genesis document and, optionally, a trust anchor.

A bundle proves a transaction (with its receipt), a record anchored in a batch, or a state value
(or its absence) against a block header certified by more than 2/3 of the validators.

With the genesis alone a verifier follows the bundle's validator transitions from the genesis
set; keys of a set that has since been retired could then sign a forged history. A trust anchor
(`Trust`: the height and hash of a recent header obtained from a source the verifier trusts,
such as the regulator's observer) pins that history: the set in force at the trusted height must
be the one the trusted header names, the proven block must not be older than it, and the anchor
is trusted only for a trusting period (docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chain import merkle, smt
from chain.block import Certificate, Header, validators_hash, verify_certificate
from chain.encoding import canonical, from_hex
from chain.errors import ChainError, ProofError
from chain.genesis import Genesis
from chain.state import MAX_KEY_CHARS, key_hash, value_hash
from chain.suites.base import Hasher
from chain.suites.hashing import ChainTrees, trees_for
from chain.tx import tx_from_json, wrong_suite

BUNDLE_VERSION = 1
NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a contract name (governance.RegisterContract)
DEFAULT_TRUSTING_PERIOD_MS = 7 * 24 * 3600 * 1000
MAX_CLOCK_DRIFT_MS = 10 * 1000
_HEADER_INTS = ("height", "time_ms", "tx_count")
# A bundle's suite, as its block's proposer key names it (hex length)
_KEY_SUITES = {64: ("ed25519-sha256", "Ed25519"), 130: ("sm2-sm3", "SM2")}
# Every bundle's fields, then each kind's own
_COMMON_FIELDS = {"version", "kind", "chain_id", "header", "certificate", "validator_transitions"}
_TX_FIELDS = _COMMON_FIELDS | {"tx", "tx_proof", "receipt", "receipt_proof"}
_FIELDS = {
    "tx": _TX_FIELDS,
    "record": _TX_FIELDS | {"record"},
    "state": _COMMON_FIELDS | {"namespace", "key", "value", "state_proof"},
}


@dataclass(frozen=True)
class Proven:
    """What a bundle proved, in words and in fields."""

    kind: str
    height: int
    block_hash: str
    summary: str
    facts: dict[str, Any]


@dataclass(frozen=True)
class Trust:
    """A header the verifier trusts (`HEIGHT:HASH`, e.g. from an observer), and for how long.

    `header` and `certificate` are that header's content, when the bundle itself carries no
    header at `height` (`smartcity verify-proof --checkpoint`, a GET /v1/blocks/{height} answer);
    the hash pins them, so they may come from anywhere. `now_ms` is the verifier's clock.
    """

    height: int
    hash: str
    now_ms: int
    trusting_period_ms: int = DEFAULT_TRUSTING_PERIOD_MS
    header: dict[str, Any] | None = None
    certificate: dict[str, Any] | None = None


def parse_trust(text: str) -> tuple[int, str]:
    """`HEIGHT:HASH` (a positive height, a 64-hex header hash) or ValueError naming the problem."""
    height, sep, digest = text.partition(":")
    if not sep or not height.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"a trust anchor is HEIGHT:HASH (64 lowercase hex), not {text!r}")
    if int(height) < 1:
        raise ValueError("the trusted height is at least 1")
    return int(height), digest


def verify_bundle(bundle: Any, genesis: Genesis, trust: Trust | None = None) -> Proven:
    """Verify a bundle end to end or raise ProofError saying what failed."""
    try:
        return _verify(bundle, genesis, trust)
    except ProofError:
        raise
    except (ChainError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ProofError(f"malformed bundle: {exc}") from exc


def _verify(bundle: Any, genesis: Genesis, trust: Trust | None) -> Proven:
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
    _check_suite(bundle["header"], genesis)
    if bundle["chain_id"] != genesis.chain_id:
        raise ProofError(
            f"this bundle is from another chain (genesis {genesis.hash[:16]}… is chain"
            f" {genesis.chain_id!r}, the bundle's chain is {shown(bundle['chain_id'], quote=True)})"
        )
    header = _verified_header(bundle, genesis, trust)
    trees = trees_for(genesis.suite)
    if kind == "state":
        return _verify_state(bundle, header, trees)
    return _verify_tx(bundle, header, trees, record=kind == "record")


def _check_suite(header: Any, genesis: Genesis) -> None:
    """Refuse, naming both suites, a bundle whose block was proposed under another suite."""
    proposer = header.get("proposer") if isinstance(header, dict) else None
    named = _KEY_SUITES.get(len(proposer)) if isinstance(proposer, str) else None
    # Verify the block's suite is the genesis's
    if named is not None and named[0] != genesis.crypto:
        raise ProofError(
            f"this bundle is from a chain of the {named[0]} suite (its block's proposer is an"
            f" {named[1]} key), but the genesis names the {genesis.crypto} suite: verify it"
            " against its own chain's genesis"
        )


def _verified_header(bundle: dict[str, Any], genesis: Genesis, trust: Trust | None) -> Header:
    header = _header(bundle["header"])
    # Verify the header belongs to this chain
    if header.chain_id != genesis.chain_id:
        raise ProofError(f"the header is from another chain ({shown(header.chain_id, quote=True)})")
    seen: dict[int, Header] = {header.height: header}
    transitions, trusted = bundle["validator_transitions"], trust.height if trust else None
    powers, at_trusted = _follow_transitions(
        transitions, genesis, before=header.height, seen=seen, trusted_height=trusted
    )
    # Verify the header names the validator set reached from genesis, and that set signed it
    if header.validators_hash != _set_hash(powers, genesis.suite.hasher):
        raise ProofError("the header's validator set is not the one the transitions lead to")
    certificate = _certificate(bundle["certificate"])
    verify_certificate(certificate, header, powers, genesis.suite.verify)
    if trust is not None:
        _check_trust(trust, header, seen, at_trusted, genesis)
    return header


def _check_trust(
    trust: Trust,
    proven: Header,
    seen: dict[int, Header],
    at_trusted: dict[str, int] | None,
    genesis: Genesis,
) -> None:
    """The bundle's history passes through the trusted header, which is recent enough."""
    # Verify the proven block is not older than the trusted header: nothing links back to it
    if proven.height < trust.height:
        raise ProofError(
            f"the bundle proves block {proven.height}, older than the trusted header at"
            f" {trust.height}: ask for a proof at or above the trusted height"
        )
    pinned = seen.get(trust.height)
    if pinned is None and trust.header is not None:
        pinned = _header(trust.header)
        # Verify the checkpoint is certified by the set the transitions lead to at its height
        if at_trusted is None or pinned.validators_hash != _set_hash(
            at_trusted, genesis.suite.hasher
        ):
            raise ProofError(
                f"the bundle's validator transitions do not lead to the set of the trusted"
                f" header at {trust.height}: a truncated or forged history"
            )
        if trust.certificate is None:
            raise ProofError("the trusted header needs its certificate")
        verify_certificate(
            _certificate(trust.certificate), pinned, at_trusted, genesis.suite.verify
        )
    if pinned is None:
        raise ProofError(
            f"the bundle has no header at the trusted height {trust.height}; give that header"
            " (GET /v1/blocks/{height} from the observer) as the checkpoint"
        )
    # Verify the history goes through the trusted header, not a fork of it
    if pinned.height != trust.height or pinned.hash != trust.hash:
        raise ProofError(
            f"the bundle's header at height {trust.height} is {pinned.hash}, not the trusted"
            f" {trust.hash}: a different history (fork or forgery)"
        )
    # Verify the anchor is within its trusting period, and the proven block is not in the future
    age_ms = trust.now_ms - pinned.time_ms
    if age_ms > trust.trusting_period_ms:
        raise ProofError(
            f"the trusted header is {age_ms // 3_600_000} h old, beyond the trusting period of"
            f" {trust.trusting_period_ms // 3_600_000} h: take a recent one from an observer"
        )
    if proven.time_ms > trust.now_ms + MAX_CLOCK_DRIFT_MS:
        raise ProofError("the proven block's time is in the future of this verifier's clock")


def _header(value: Any) -> Header:
    header = Header.from_json(value)
    # Verify the header's numbers are integers (a float 5.0 hashes like 5 but is not one)
    for name in _HEADER_INTS:
        _require_int(getattr(header, name), f"header {name}")
    return header


def _certificate(value: Any) -> Certificate:
    certificate = Certificate.from_json(value)
    _require_int(certificate.height, "certificate height")
    _require_int(certificate.round, "certificate round")
    return certificate


def _require_int(value: Any, what: str) -> None:
    if type(value) is not int or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, not {value!r}")


def _follow_transitions(
    transitions: Any,
    genesis: Genesis,
    *,
    before: int,
    seen: dict[int, Header],
    trusted_height: int | None,
) -> tuple[dict[str, int], dict[str, int] | None]:
    """Walk certified validator-set changes from the genesis set.

    Returns the set in force at the proven block, and the set in force at `trusted_height`.
    """
    if not isinstance(transitions, list):
        raise ProofError("validator_transitions must be a list")
    powers = genesis.validator_powers()
    hasher, verify = genesis.suite.hasher, genesis.suite.verify
    at_trusted = powers if trusted_height is not None else None
    last = 0
    for step in transitions:
        if not isinstance(step, dict) or set(step) != {"header", "certificate", "validators"}:
            raise ProofError("a validator transition has exactly header, certificate, validators")
        header = _header(step["header"])
        # Verify transitions are in height order, on this chain, before the proven block
        if not last < header.height < before or header.chain_id != genesis.chain_id:
            raise ProofError(
                "validator transitions must be of this chain, ascending, before the block"
            )
        # Verify the set in force signed it, and it commits to the next set it announces
        if header.validators_hash != _set_hash(powers, hasher):
            raise ProofError(f"transition at {header.height} is not signed by the set in force")
        verify_certificate(_certificate(step["certificate"]), header, powers, verify)
        validators = step["validators"]
        if (
            not isinstance(validators, list)
            or validators_hash(validators, hasher) != header.next_validators_hash
        ):
            raise ProofError(f"transition at {header.height} announces another validator set")
        seen[header.height] = header
        powers = _powers(validators, header.height)
        if trusted_height is not None and header.height < trusted_height:
            at_trusted = powers
        last = header.height
    return powers, at_trusted


def _powers(validators: list[Any], height: int) -> dict[str, int]:
    """A transition's announced set: exactly {name, pub_key, power} each, integer powers."""
    powers: dict[str, int] = {}
    for entry in validators:
        if not isinstance(entry, dict) or set(entry) != {"name", "pub_key", "power"}:
            raise ProofError(
                f"transition at {height}: a validator has exactly name, pub_key, power"
            )
        if type(entry["power"]) is not int or entry["power"] < 1:
            raise ProofError(f"transition at {height}: a validator's power is a positive integer")
        if not isinstance(entry["pub_key"], str) or entry["pub_key"] in powers:
            raise ProofError(f"transition at {height}: validator keys are distinct strings")
        powers[entry["pub_key"]] = entry["power"]
    return powers


def _set_hash(powers: dict[str, int], hasher: Hasher) -> str:
    return validators_hash([{"pub_key": k, "power": p} for k, p in powers.items()], hasher)


def _verify_tx(
    bundle: dict[str, Any], header: Header, trees: ChainTrees, *, record: bool
) -> Proven:
    tx_json, receipt_json = bundle["tx"], bundle["receipt"]
    tx = tx_from_json(tx_json)
    # Verify the transaction is of the chain's suite, in the block, signed by its sender
    if tx.suite != trees.suite:
        raise ProofError(f"the transaction is refused: {wrong_suite(tx, trees.suite)}")
    _check_path(
        canonical(tx_json),
        bundle["tx_proof"],
        header.txs_root,
        header.tx_count,
        "transaction",
        trees.hasher,
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
        trees.hasher,
    )
    _require_int(receipt_json["height"], "receipt height")
    _require_int(receipt_json["index"], "receipt index")
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
            f"record {facts['record']} is in batch {shown(facts['label'], quote=True)} of"
            f" {facts['count']} records,"
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


def _verify_state(bundle: dict[str, Any], header: Header, trees: ChainTrees) -> Proven:
    namespace, key, value = bundle["namespace"], bundle["key"], bundle["value"]
    if not isinstance(namespace, str) or not isinstance(key, str):
        raise ProofError("namespace and key must be strings")
    # Verify the key is one a contract could have written (section 7): anything else is a
    # look-alike of a real key (NUL, tab, zero-width space, over-long, uppercase namespace)
    if not NAMESPACE.match(namespace):
        raise ProofError(
            f"namespace {shown(namespace)} is not a contract name ({NAMESPACE.pattern})"
        )
    if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isprintable():
        raise ProofError(
            f"state key {shown(key)} is not 1-{MAX_KEY_CHARS} printable characters: no contract"
            " can write it"
        )
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
        leaf = trees.Leaf(
            from_hex(leaf_json["key_hash"], 32, field="key_hash"),
            from_hex(leaf_json["value_hash"], 32, field="value_hash"),
        )
    path = key_hash(namespace, key, trees.hasher)
    root = trees.compute_root(path, trees.StateProof(siblings, leaf))
    # Verify the proof reaches the header's state root
    if root.hex() != header.state_root:
        raise ProofError("the state proof does not reach the header's state root")
    present = leaf is not None and leaf.key_hash == path
    # Verify the claimed value matches what the proof shows
    if value is None and present:
        raise ProofError("the bundle claims absence but the key is present")
    if value is not None and (
        not present or leaf is None or leaf.value_hash != value_hash(value, trees.hasher)
    ):
        raise ProofError("the bundle's value is not the proven value")
    where = f"{namespace}/{shown(key)}"
    summary = (
        (f"{where} = {shown(canonical(value).decode()[:200])}" if present else f"{where} is absent")
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


def _check_path(
    leaf_data: bytes,
    proof: Any,
    root_hex: str,
    size: int,
    what: str,
    hasher: Hasher = hashlib.sha256,
) -> None:
    """`leaf_data` is at `proof`'s place in the tree of `root_hex`, hashed with `hasher` (the
    chain's suite's for transactions and receipts, SHA-256 for applications' record batches)."""
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
    computed = merkle.root_from_path(merkle.leaf_hash(leaf_data, hasher), index, size, path, hasher)
    if computed != from_hex(root_hex, 32, field=f"{what} root"):
        raise ProofError(f"the {what} is not in the committed Merkle tree")


def shown(text: Any, *, quote: bool = False) -> str:
    """Text from a bundle as it may be printed: unambiguous, nothing hidden or look-alike.

    Plain printable ASCII (without backslash or quotes) is shown as is; anything else as a
    JSON string with every non-ASCII character escaped, so `a\u200bb` never looks like `ab`.
    """
    value = str(text)
    plain = value.isascii() and value.isprintable() and not set(value) & set("\\\"'")
    if plain and not quote:
        return value
    return f"'{value}'" if plain else json.dumps(value, ensure_ascii=True)


def record_hash_of_file(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
