"""Proof bundles read strictly, printed unambiguously, and checked against a trust anchor.

What a forger tries here: duplicate JSON members, integers written as floats, state keys no
contract can write (which an absence proof "proves" as readily as real ones), look-alike text in
what the verifier prints, and a long-range forgery signed by the keys of a retired validator set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import light
from chain.block import Certificate, Header, sign_precommit, validators_hash
from chain.crypto import SigningKey
from chain.errors import ProofError
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.strict_json import parse_bundle
from chain.tx import Tx
from smartcity.cli import main

NEWCOMER = SigningKey.from_seed(b"newcomer".ljust(32, b"\0"))
HOUR_MS = 3_600_000
NOW_MS = int(time.time() * 1000) - 60_000  # blocks of this test are a minute old


def commit(ledger: Ledger, signers: list[SigningKey], txs: list[Tx]) -> Header:
    """Execute and commit one block, certified by each of `signers`."""
    height = ledger.height + 1
    result = ledger.execute(
        txs, height=height, time_ms=NOW_MS + height, proposer=signers[0].public_hex
    )
    sigs = [
        sign_precommit(
            k, chain_id=ledger.chain_id, height=height, round_=0, block_hash=result.header.hash
        )
        for k in signers
    ]
    ledger.commit(result, Certificate(result.header.height, 0, result.header.hash, sigs))  # type: ignore[arg-type]
    return result.header


@pytest.fixture
def history(ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]) -> SimpleNamespace:
    """A chain whose genesis validator was replaced by governance, then went on committing."""
    old, new = [keys.validator], [keys.validator, NEWCOMER]

    def decide(signers: list[SigningKey], action: str, params: dict[str, Any]) -> None:
        proposal = sign(keys.agency, "governance", "propose", {"action": action, "params": params})
        commit(ledger, signers, [proposal])
        vote = sign(keys.road, "governance", "vote", {"proposal": proposal.hash, "approve": True})
        commit(ledger, signers, [vote])

    decide(
        old, "add_validator", {"name": "validator-1", "pub_key": NEWCOMER.public_hex, "power": 1}
    )
    decide(new, "remove_validator", {"pub_key": keys.validator.public_hex})
    trusted = commit(ledger, [NEWCOMER], [])
    for _ in range(2):
        commit(ledger, [NEWCOMER], [])
    anchor = sign(keys.agency, "anchors", "anchor", {"root": "ab" * 32, "count": 1, "label": "x"})
    commit(ledger, [NEWCOMER], [anchor])
    return SimpleNamespace(ledger=ledger, trusted=trusted, old=keys.validator)


def trust(pinned: Header, **kw: Any) -> light.Trust:
    return light.Trust(
        height=pinned.height, hash=pinned.hash, now_ms=pinned.time_ms + HOUR_MS, **kw
    )


def long_range_forgery(genesis: Genesis, retired: SigningKey, height: int) -> dict[str, Any]:
    """A bundle 'proving' the real anchor absent, signed by the retired genesis set alone."""
    genesis_set = [{"pub_key": v.pub_key, "power": v.power} for v in genesis.validators]
    header = Header(
        chain_id=genesis.chain_id,
        height=height,
        prev_hash="00" * 32,
        time_ms=NOW_MS + height,
        proposer=retired.public_hex,
        txs_root="00" * 32,
        tx_count=0,
        receipts_root="00" * 32,
        state_root="00" * 32,
        validators_hash=validators_hash(genesis_set),
        next_validators_hash=validators_hash(genesis_set),
    )
    sig = sign_precommit(
        retired, chain_id=genesis.chain_id, height=height, round_=0, block_hash=header.hash
    )
    return {
        "version": 1,
        "kind": "state",
        "chain_id": genesis.chain_id,
        "namespace": "anchors",
        "key": f"root:city-agency:{'ab' * 32}",
        "value": None,
        "state_proof": {"siblings": [], "leaf": None},
        "header": header.to_json(),
        "certificate": {
            "height": height,
            "round": 0,
            "block_hash": header.hash,
            "signatures": [{"validator": sig.validator, "sig": sig.sig}],
        },
        "validator_transitions": [],
    }


def test_a_long_range_forgery_fools_genesis_alone_but_not_a_trust_anchor(history, genesis):
    real = history.ledger.state_proof("anchors", f"root:city-agency:{'ab' * 32}")
    cert = history.ledger.block(history.trusted.height)[1].to_json()
    checkpoint = trust(history.trusted, header=history.trusted.to_json(), certificate=cert)
    assert light.verify_bundle(real, genesis, checkpoint).facts["present"] is True

    forged = long_range_forgery(genesis, history.old, history.ledger.height + 1)
    # The weakness the trust anchor closes: the genesis set's retired key signs a new history
    assert light.verify_bundle(forged, genesis).facts["present"] is False
    with pytest.raises(ProofError, match="no header at the trusted height"):
        light.verify_bundle(forged, genesis, trust(history.trusted))
    with pytest.raises(ProofError, match="truncated or forged history"):
        light.verify_bundle(forged, genesis, checkpoint)
    # A bundle whose own header is the trusted one needs no checkpoint
    newest = history.ledger.block(history.ledger.height)[0]
    assert light.verify_bundle(real, genesis, trust(newest)).facts["present"] is True


def test_a_truncated_transitions_list_is_caught_by_the_checkpoint(history, genesis):
    real = history.ledger.state_proof("anchors", f"root:city-agency:{'ab' * 32}")
    cert = history.ledger.block(history.trusted.height)[1].to_json()
    anchored = trust(history.trusted, header=history.trusted.to_json(), certificate=cert)
    assert light.verify_bundle(real, genesis, anchored).facts["present"] is True
    kept: list[Any]
    for kept in ([], real["validator_transitions"][:1]):
        with pytest.raises(ProofError):
            light.verify_bundle({**real, "validator_transitions": kept}, genesis, anchored)


def test_the_trust_anchor_must_match_be_recent_and_not_newer_than_the_proof(history, genesis):
    ledger, pinned = history.ledger, history.trusted
    real = ledger.state_proof("anchors", f"root:city-agency:{'ab' * 32}")
    cert = ledger.block(pinned.height)[1].to_json()
    fork = light.Trust(
        height=pinned.height,
        hash="cd" * 32,
        now_ms=pinned.time_ms,
        header=pinned.to_json(),
        certificate=cert,
    )
    with pytest.raises(ProofError, match="fork or forgery"):
        light.verify_bundle(real, genesis, fork)
    stale = light.Trust(
        height=pinned.height,
        hash=pinned.hash,
        now_ms=pinned.time_ms + 8 * 24 * HOUR_MS,
        header=pinned.to_json(),
        certificate=cert,
    )
    with pytest.raises(ProofError, match="beyond the trusting period"):
        light.verify_bundle(real, genesis, stale)
    newest = ledger.block(ledger.height)[0]
    ahead = light.Trust(height=newest.height, hash=newest.hash, now_ms=newest.time_ms)
    old_tx = ledger.state_proof("anchors", "nothing")
    assert light.verify_bundle(old_tx, genesis, ahead).facts["present"] is False
    later = light.Trust(height=newest.height + 5, hash="ab" * 32, now_ms=newest.time_ms)
    with pytest.raises(ProofError, match="older than the trusted header"):
        light.verify_bundle(old_tx, genesis, later)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"kind": "state", "kind": "tx"}', "duplicate member 'kind'"),
        ('{"version": 1.0}', "integer written as a float"),
        ('{"version": 1e0}', "integer written as a float"),
        ('{"value": NaN}', "not a JSON number"),
        ("[" * 100 + "]" * 100, "nests"),
    ],
)
def test_parse_bundle_refuses_ambiguous_json(text, named):
    with pytest.raises(ProofError, match=named):
        parse_bundle(text)


def test_parse_bundle_keeps_real_fractions():
    assert parse_bundle('{"value": {"pd": 0.0125}}') == {"value": {"pd": 0.0125}}


IMPOSSIBLE_KEYS = st.one_of(
    st.text(min_size=1, max_size=20).map(lambda t: t + "\u200b"),
    st.text(max_size=20).map(lambda t: "root:\x00" + t),
    st.just("root:city-agency:\tab"),
    st.just("x" * 257),
    st.just(""),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1),
)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=IMPOSSIBLE_KEYS)
def test_absence_of_a_key_no_contract_can_write_is_refused(history, genesis, key):
    absent = history.ledger.state_proof("anchors", "root:nothing")
    with pytest.raises(ProofError, match="no contract can write it"):
        light.verify_bundle({**absent, "key": key}, genesis)


@pytest.mark.parametrize("namespace", ["Anchors", "ANCHORS", "anchors\x00", "1anchors", ""])
def test_a_namespace_that_is_not_a_contract_name_is_refused(history, genesis, namespace):
    absent = history.ledger.state_proof("anchors", "root:nothing")
    with pytest.raises(ProofError, match="not a contract name"):
        light.verify_bundle({**absent, "namespace": namespace}, genesis)


def run_cli(tmp_path: Path, genesis: Genesis, text: str, *extra: str) -> Any:
    bundle, genesis_file = tmp_path / "bundle.json", tmp_path / "genesis.json"
    bundle.write_text(text)
    genesis_file.write_text(json.dumps(genesis.to_json()))
    return CliRunner().invoke(
        main, ["verify-proof", str(bundle), "--genesis", str(genesis_file), *extra]
    )


def test_the_cli_refuses_duplicates_and_floats_and_escapes_what_it_prints(
    history, genesis, tmp_path
):
    absent = history.ledger.state_proof("anchors", "root:nothing")
    text = json.dumps(absent)
    ok = run_cli(tmp_path, genesis, text)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(
        "VALID: There is no anchors entry 'root:nothing' in the state after"
    )
    duplicated = text[:-1] + ', "key": "root:other"}'
    refused = run_cli(tmp_path, genesis, duplicated)
    assert refused.exit_code == 1 and "duplicate member 'key'" in refused.output
    floated = text.replace('"version": 1', '"version": 1.0')
    refused = run_cli(tmp_path, genesis, floated)
    assert refused.exit_code == 1 and "integer written as a float" in refused.output
    hidden = json.dumps({**absent, "key": "root:no\u200bthing"})
    refused = run_cli(tmp_path, genesis, hidden)
    assert refused.exit_code == 1 and "\\u200b" in refused.output and "\u200b" not in refused.output


def test_the_cli_checks_a_trust_anchor_with_a_checkpoint(history, genesis, tmp_path):
    ledger, pinned = history.ledger, history.trusted
    real = json.dumps(ledger.state_proof("anchors", f"root:city-agency:{'ab' * 32}"))
    header, cert = ledger.block(pinned.height)
    block = tmp_path / "block.json"
    block.write_text(
        json.dumps(
            {
                "hash": header.hash,
                "header": header.to_json(),
                "certificate": cert.to_json(),
                "txs": [],
            }
        )
    )
    anchor = f"{pinned.height}:{pinned.hash}"
    ok = run_cli(tmp_path, genesis, real, "--trust", anchor, "--checkpoint", str(block))
    assert ok.exit_code == 0, ok.output
    # an entry the sentence has no words for: it points at its value, printed below it
    said = ok.output.splitlines()
    assert said[0].startswith(f"VALID: The anchors entry 'root:city-agency:{'ab' * 32}' holds the")
    pinned_at = f"{pinned.height} ({pinned.hash[:12]}…)"
    assert said[1] == f"Its history passes through the block you trust, {pinned_at}."
    assert said[2].startswith("  value  ") and len(said) >= 3, said
    forged = json.dumps(long_range_forgery(genesis, history.old, ledger.height + 1))
    assert run_cli(tmp_path, genesis, forged).exit_code == 0  # genesis alone is fooled
    refused = run_cli(tmp_path, genesis, forged, "--trust", anchor, "--checkpoint", str(block))
    assert refused.exit_code == 1 and "truncated or forged history" in refused.output
    bad = run_cli(tmp_path, genesis, real, "--trust", "12:xyz")
    assert bad.exit_code == 2 and "HEIGHT:HASH" in bad.output
