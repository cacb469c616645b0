"""A chain on the national suite (issue 16): the genesis names the suite, and every hash and
signature of the chain goes through it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import SigningKey
from chain.encoding import canonical
from chain.errors import GenesisError
from chain.genesis import parse_genesis
from chain.suites import SUITE_NAMES, suite_for

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
