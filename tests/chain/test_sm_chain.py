"""A chain on the national suite (issue 16): the genesis names the suite, and every hash and
signature of the chain goes through it."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import merkle, smt
from chain.auth import AuthError, mint_token, verify_token
from chain.block import vote_bytes
from chain.contracts import membership
from chain.crypto import SigningKey
from chain.db import make_engine
from chain.encoding import b64url, canonical, from_b64url
from chain.errors import GenesisError, ProofError, TxRejected
from chain.genesis import Genesis, load_genesis, parse_genesis
from chain.home import SuiteHome, load_node_home
from chain.ledger import Ledger
from chain.light import verify_bundle
from chain.node import Node
from chain.server import open_node
from chain.store import BlockStore
from chain.suites import SUITE_NAMES, load_any_key, suite_for
from chain.suites.hashing import check_tree, trees_for
from chain.tx import VERIFIED, SmTx, Tx, sign_tx, tx_from_json
from smartcity.cli import main
from smartcity.demo import init_suite

SM = suite_for("sm2-sm3")
SM_KEYS = [SM.key_from_seed(bytes([i + 1]) * 32) for i in range(4)]
ED_KEYS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]


def genesis_json(keys: list[Any], crypto: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "chain_id": "sm-chain",
        "genesis_time_ms": 0,
        "validators": [{"name": f"v{i}", "pub_key": k.public_hex} for i, k in enumerate(keys)],
    }
    if crypto is not None:
        value["crypto"] = crypto
    return value


def test_a_genesis_without_crypto_is_the_default_suite_with_todays_bytes() -> None:
    value = genesis_json(ED_KEYS)
    genesis = parse_genesis(value)
    assert genesis.crypto == "ed25519-sha256" and genesis.suite.name == "ed25519-sha256"
    assert genesis.to_json() == {**value, **genesis.to_json()} and "crypto" not in genesis.to_json()
    assert genesis.hash == hashlib.sha256(canonical(genesis.to_json())).hexdigest()
    named = parse_genesis(genesis_json(ED_KEYS, "ed25519-sha256"))
    assert named.hash == genesis.hash


def test_an_sm_genesis_is_hashed_with_sm3_and_keeps_its_suite_name() -> None:
    genesis = parse_genesis(genesis_json(SM_KEYS, "sm2-sm3"))
    assert genesis.suite is SM and genesis.to_json()["crypto"] == "sm2-sm3"
    assert genesis.hash == SM.hash(canonical(genesis.to_json())).hex()
    assert parse_genesis(genesis.to_json()) == genesis


@settings(max_examples=25, deadline=None)
@given(st.text(max_size=20).filter(lambda s: s not in SUITE_NAMES))
def test_an_unknown_suite_name_is_refused_naming_the_known_ones(name: str) -> None:
    with pytest.raises(GenesisError) as caught:
        parse_genesis(genesis_json(ED_KEYS, name))
    assert str(caught.value) == (
        f"invalid genesis at crypto: Value error, unknown crypto suite {name!r}:"
        " a genesis names one of ed25519-sha256, sm2-sm3"
    )


def test_keys_of_the_other_suite_are_refused_saying_which_key_a_chain_takes() -> None:
    with pytest.raises(GenesisError) as caught:
        parse_genesis(genesis_json(ED_KEYS, "sm2-sm3"))
    assert str(caught.value) == (
        f"invalid genesis at : Value error, {ED_KEYS[0].public_hex[:16]}… is not a usable"
        " SM2 public key (sm2-sm3 suite: 130 hex digits, 04 || X || Y on the curve)"
    )
    with pytest.raises(GenesisError) as caught:
        parse_genesis(genesis_json(SM_KEYS))
    assert str(caught.value) == (
        f"invalid genesis at : Value error, {SM_KEYS[0].public_hex[:16]}… is not a usable"
        " Ed25519 public key (ed25519-sha256 suite: 64 hex digits)"
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 129), st.sampled_from("0123456789abcdef"))
def test_an_sm2_key_off_the_curve_is_refused(at: int, digit: str) -> None:
    key = SM_KEYS[0].public_hex
    mutated = key[:at] + digit + key[at + 1 :]
    if mutated == key:
        return
    with pytest.raises(GenesisError, match="is not a usable SM2 public key"):
        parse_genesis(genesis_json([*SM_KEYS[1:], _key(mutated)], "sm2-sm3"))


class _key:
    def __init__(self, public_hex: str) -> None:
        self.public_hex = public_hex


ROOT = "ab" * 32


def sm_genesis() -> Genesis:
    value = genesis_json(SM_KEYS[:1], "sm2-sm3")
    value["organisations"] = [
        {
            "id": "city-agency",
            "name": "Agency",
            "roles": ["agency"],
            "keys": [SM_KEYS[1].public_hex],
        }
    ]
    return parse_genesis(value)


def anchor(key: Any, chain_id: str = "sm-chain") -> Tx:
    args = {"root": ROOT, "count": 1, "label": "sm"}
    return sign_tx(
        key, chain_id=chain_id, contract="anchors", method="anchor", args=args, expiry_height=100
    )


@pytest.fixture
def sm_ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger(sm_genesis())


def test_an_sm_chain_hashes_and_signs_every_part_with_sm3_and_sm2(sm_ledger: Ledger) -> None:
    node = Node(sm_ledger, key=SM_KEYS[0])
    tx = anchor(SM_KEYS[1])
    node.submit([tx])
    result = node.produce_block()
    assert result is not None and result.receipts[0].ok
    header = result.header
    # Verify each hash is SM3 of the bytes the default suite would SHA-256
    assert isinstance(tx, SmTx) and tx.hash == SM.hash(tx.encode()).hex()
    assert header.hash == SM.hash(canonical(header.to_json())).hex()
    assert header.prev_hash == sm_ledger.genesis.hash
    assert (
        header.txs_root
        == merkle.root([tx.encode()], SM.hasher).hex()
        != merkle.root([tx.encode()]).hex()
    )
    assert header.validators_hash == sm_ledger.genesis.validators_hash
    block = sm_ledger.block(1)
    assert block is not None
    [commit] = block[1].signatures
    vote = vote_bytes(
        chain_id="sm-chain", kind="precommit", height=1, round_=0, block_hash=header.hash
    )
    assert SM.verify(commit.validator, vote, bytes.fromhex(commit.sig))
    # Verify a tx bundle and a state bundle verify offline against the SM genesis
    proven = verify_bundle(sm_ledger.tx_proof(tx.hash), sm_ledger.genesis)
    assert proven.facts["tx"] == tx.hash and proven.block_hash == header.hash
    state = sm_ledger.state_proof("membership", membership.org_key("city-agency"))
    assert verify_bundle(state, sm_ledger.genesis).facts["present"] is True


def test_a_bundle_checked_against_the_other_suites_genesis_is_refused_naming_both(
    sm_ledger: Ledger, tmp_path: Path
) -> None:
    node = Node(sm_ledger, key=SM_KEYS[0])
    node.submit([anchor(SM_KEYS[1])])
    node.produce_block()
    sm_bundle = sm_ledger.state_proof("membership", membership.org_key("city-agency"))
    ed_value = genesis_json(ED_KEYS[:1])
    ed_value["organisations"] = [
        {
            "id": "city-agency",
            "name": "Agency",
            "roles": ["agency"],
            "keys": [ED_KEYS[1].public_hex],
        }
    ]
    engine = make_engine(f"sqlite:///{tmp_path / 'ed.sqlite'}")
    ed_ledger = Ledger(parse_genesis(ed_value), BlockStore(engine))
    ed_node = Node(ed_ledger, key=ED_KEYS[0])
    ed_node.submit([anchor(ED_KEYS[1])])
    ed_node.produce_block()
    ed_bundle = ed_ledger.state_proof("membership", membership.org_key("city-agency"))
    with pytest.raises(ProofError) as caught:
        verify_bundle(ed_bundle, sm_ledger.genesis)
    assert str(caught.value) == (
        "this bundle is from a chain of the ed25519-sha256 suite (its block's proposer is an"
        " Ed25519 key), but the genesis names the sm2-sm3 suite: verify it against its own"
        " chain's genesis"
    )
    with pytest.raises(ProofError) as caught:
        verify_bundle(sm_bundle, ed_ledger.genesis)
    assert str(caught.value) == (
        "this bundle is from a chain of the sm2-sm3 suite (its block's proposer is an"
        " SM2 key), but the genesis names the ed25519-sha256 suite: verify it against its own"
        " chain's genesis"
    )
    engine.dispose()


def test_a_transaction_of_the_other_suite_is_refused_naming_both(sm_ledger: Ledger) -> None:
    with pytest.raises(TxRejected) as caught:
        Node(sm_ledger, key=SM_KEYS[0]).submit([anchor(ED_KEYS[1])])
    assert caught.value.code == "wrong_suite"
    assert str(caught.value.message) == (
        "the sender is an Ed25519 key (suite ed25519-sha256); this chain's genesis names the"
        " sm2-sm3 suite"
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 300))
def test_an_sm_transaction_with_any_sender_length_but_64_or_130_hex_is_malformed(
    size: int,
) -> None:
    body = anchor(SM_KEYS[1]).to_json()
    body["sender"] = ("0" * size) if size not in (64, 130) else "zz" * (size // 2)
    with pytest.raises(TxRejected) as caught:
        tx_from_json(body)
    assert caught.value.code == "tx_malformed"
    if size % 2 == 0 and size not in (64, 130):
        assert str(caught.value.message) == (
            f"sender must be 32 bytes (Ed25519) or 65 bytes (SM2, 04 || X || Y), got {size // 2}"
        )


def test_an_sm2_bearer_token_is_sm2sm3_and_verifies_against_the_registry() -> None:
    key = SM_KEYS[1]
    token = mint_token(key, org="city-agency", audience="chain", now=1_000)
    header = json.loads(from_b64url(token.split(".")[0]))
    assert header == {"alg": "SM2SM3", "typ": "JWT", "kid": key.public_hex}
    resolve = {key.public_hex: ("city-agency", frozenset({"agency"}))}.get
    caller = verify_token(token, audience="chain", resolve=resolve, now=1_010)
    assert (caller.org, caller.key) == ("city-agency", key.public_hex)
    # Verify the signature covers the token, and the alg must be the key's suite's
    head, claims, sig = token.split(".")
    longer = {**json.loads(from_b64url(claims)), "exp": 1_000 + 3_600}
    forged = f"{head}.{b64url(json.dumps(longer).encode())}.{sig}"
    as_eddsa = b64url(json.dumps({**header, "alg": "EdDSA"}).encode())
    for bad, message in (
        (forged, "token signature does not verify"),
        (f"{as_eddsa}.{claims}.{sig}", "token kid is not a usable Ed25519 public key"),
    ):
        with pytest.raises(AuthError) as caught:
            verify_token(bad, audience="chain", resolve=resolve, now=1_010)
        assert caught.value.message == message


def test_a_backup_of_an_sm_node_verifies_and_restores(tmp_path: Path, db_url: str) -> None:
    suite = tmp_path / "suite"
    init_suite(suite, validators=1, crypto="sm2-sm3")
    home = suite / "nodes" / "validator-0"
    running = open_node(load_node_home(home), database_url=db_url)
    running.start()
    try:
        key = load_any_key(suite / "orgs" / "city-agency" / "key.jwk")
        tx = anchor(key, chain_id=running.node.ledger.chain_id)
        assert running.node.submit_and_wait(tx)["status"] == "ok"
        out = tmp_path / "node.backup"
        env = {"SMARTCITY_DATABASE_URL": db_url}
        made = CliRunner().invoke(main, ["backup", "--home", str(home), "--out", str(out)], env=env)
        assert made.exit_code == 0, made.output
    finally:
        running.stop()
    # Verify restore re-hashes the blocks and state with SM3 and accepts them
    url = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    restored = CliRunner().invoke(
        main, ["restore", str(out), "--home", str(tmp_path / "restored"), "--database-url", url]
    )
    assert restored.exit_code == 0 and "verified and restored" in restored.output, restored.output


def test_smartcity_init_crypto_makes_an_sm_chain_whose_every_key_is_sm2(tmp_path: Path) -> None:
    out = tmp_path / "sm"
    args = ["init", "--out", str(out), "--validators", "4", "--crypto", "sm2-sm3"]
    made = CliRunner().invoke(main, args)
    assert made.exit_code == 0, made.output
    assert made.output.startswith("chain smartcity-demo-") and " (sm2-sm3): genesis " in made.output
    genesis = load_genesis(out / "genesis.json")
    assert genesis.crypto == "sm2-sm3"
    keys = {v.name: v.pub_key for v in genesis.validators}
    for name, pub in keys.items():
        assert load_any_key(out / "nodes" / name / "node_key.jwk").public_hex == pub
        assert len(pub) == 130 and SM.is_usable_public_key(pub)
    for org in genesis.organisations:
        assert load_any_key(out / "orgs" / org.id / "key.jwk").public_hex == org.keys[0]
    refused = CliRunner().invoke(main, ["init", "--out", str(tmp_path / "x"), "--crypto", "rsa"])
    assert refused.exit_code == 2 and "Invalid value for '--crypto'" in refused.output


def test_up_refuses_a_crypto_suite_other_than_the_existing_chains(tmp_path: Path) -> None:
    # `make up CRYPTO=sm2-sm3` over an Ed25519 ./data ran on Ed25519 without a word
    data = tmp_path / "data"
    init_suite(data, validators=1)  # the default suite
    with socket.socket() as taken:  # checked before the port: the old code stopped there
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["up", "--data", str(data), "--port", port, "--crypto", "sm2-sm3"]
        refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2, refused.output
    assert (
        f"error: {data}/ holds a chain of the ed25519-sha256 suite, fixed in its genesis;"
        " --crypto sm2-sm3 applies to a new chain only" in refused.output
    )


def test_the_one_process_suite_opens_a_new_chain_on_the_suite_asked_for(tmp_path: Path) -> None:
    from smartcity.suite import open_suite

    suite = open_suite(tmp_path / "data", crypto="sm2-sm3", services=[], validators=4)
    try:
        ledger = suite.node.ledger
        assert ledger.genesis.crypto == "sm2-sm3" and suite.created
        assert all(
            n.key is not None and len(n.key.public_hex) == 130 for n in suite.cluster.validators()
        )
        operator = SuiteHome(tmp_path / "data").org_key("bsn-operator")
        assert SM.is_usable_public_key(operator.public_hex)
    finally:
        suite.cluster.stop()


def test_an_sm_ledger_reopened_on_its_database_recovers_its_state_root(
    sm_ledger: Ledger,
) -> None:
    node = Node(sm_ledger, key=SM_KEYS[0])
    node.submit([anchor(SM_KEYS[1])])
    node.produce_block()
    reopened = Ledger(sm_ledger.genesis, BlockStore(sm_ledger.store.engine))
    assert reopened.height == sm_ledger.height == 1
    assert reopened.state.root == sm_ledger.state.root
    assert reopened.last_header == sm_ledger.last_header


def test_a_node_refuses_the_other_suites_transaction_before_verifying_it(
    make_ledger: Callable[..., Ledger],
) -> None:
    ed_value = genesis_json(ED_KEYS[:1])
    ledger = make_ledger(parse_genesis(ed_value))
    tx = anchor(SM_KEYS[1])
    with pytest.raises(TxRejected) as caught:
        Node(ledger, key=ED_KEYS[0]).submit([tx])
    assert caught.value.code == "wrong_suite" and tx.hash not in VERIFIED


def test_the_sm_sparse_merkle_tree_hashes_with_sm3_only_and_a_mixed_one_is_refused() -> None:
    trees = trees_for(SM)
    key, value = bytes(32), b"\x02" * 32
    root = trees.Tree.from_entries([(key, value)]).root_hash
    assert root == SM.hash(b"\x00" + key + value) != smt.Tree.from_entries([(key, value)]).root_hash
    # An instance that hashed anything with SHA-256 would be refused when made
    with pytest.raises(ImportError, match="does not hash with its suite's hash only"):
        check_tree(smt, SM.hasher)
