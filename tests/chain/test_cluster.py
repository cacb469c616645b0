"""Four validators and an observer in one process: agreement, crash tolerance, catch-up, halt."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chain.cluster import Cluster, open_cluster
from chain.consensus.effects import Timeouts
from chain.crypto import SigningKey
from chain.genesis import Genesis
from chain.home import SuiteHome
from chain.light import verify_bundle
from chain.suites import SuiteKey
from chain.tx import Tx, sign_tx
from chain.types import Height, Round
from smartcity.demo import init_suite

from ..conftest import fresh_database_url

FAST = Timeouts(propose_ms=400, prevote_ms=200, precommit_ms=200, delta_ms=100)


@pytest.fixture
def cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Cluster, Genesis, SuiteKey]]:
    genesis = init_suite(tmp_path / "suite", validators=4, observers=1)
    urls, drops = {}, []
    for name in [p.name for p in (tmp_path / "suite" / "nodes").iterdir()]:
        backend = "postgresql" if "postgresql" in request.node.callspec.id else "sqlite"
        url, drop = fresh_database_url(backend, tmp_path)
        urls[name] = url
        drops.append(drop)
    running = open_cluster(
        tmp_path / "suite", database_urls=urls, timeouts=FAST, empty_block_interval_ms=60_000
    )
    running.start()
    yield running, genesis, SuiteHome(tmp_path / "suite").org_key("city-agency")
    running.stop()
    for node in running.nodes.values():
        node.ledger.store.engine.dispose()
    for drop in drops:
        drop()


def _backends() -> list[str]:
    import os

    return (
        ["sqlite", "postgresql"]
        if os.environ.get("SMARTCITY_DATABASE_URL", "").startswith("postgresql")
        else ["sqlite"]
    )


pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", _backends())]


def anchors(genesis: Genesis, key: SuiteKey, count: int, salt: int) -> list[Tx]:
    return [
        sign_tx(
            key,
            chain_id=genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{salt:08x}{i:056x}", "count": 1, "label": "t"},
            expiry_height=5_000,
        )
        for i in range(count)
    ]


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def same_chain(nodes: list, height: int) -> bool:  # type: ignore[type-arg]
    hashes = {n.ledger.block(height)[0].hash for n in nodes if n.ledger.height >= height}
    return len(hashes) == 1


def test_all_nodes_commit_the_same_chain_and_the_observer_proves_it(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey]
) -> None:
    running, genesis, key = cluster
    v0, observer = running.nodes["validator-0"], running.nodes["observer-0"]
    txs = anchors(genesis, key, 300, 1)
    running.nodes["validator-2"].submit(txs[:150])  # any validator takes transactions
    v0.submit(txs[150:])
    for tx in txs:
        assert v0.wait(tx.hash, 30) is not None
    wait_for(lambda: all(n.ledger.height >= v0.ledger.height for n in running.nodes.values()))
    top = min(n.ledger.height for n in running.nodes.values())
    for h in range(1, top + 1):
        assert same_chain(list(running.nodes.values()), h)
    # the regulator's observer re-executed everything and serves proofs that verify offline
    assert observer.ledger.state.root == v0.ledger.state.root
    bundle = observer.ledger.tx_proof(txs[0].hash)
    assert bundle is not None and verify_bundle(bundle, genesis).facts["status"] == "ok"
    block = observer.ledger.block(top)
    assert block is not None
    cert = block[1]
    assert len(cert.signatures) >= 3 and observer.key is None


def test_one_validator_down_the_rest_commit_and_it_catches_up(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey]
) -> None:
    running, genesis, key = cluster
    v0, v3 = running.nodes["validator-0"], running.nodes["validator-3"]
    v0.submit(anchors(genesis, key, 20, 2))
    wait_for(lambda: v3.ledger.height >= 2)
    running.hub.down.add(v3.key.public_hex)  # type: ignore[union-attr]
    v3.stop()
    later = anchors(genesis, key, 100, 3)
    v0.submit(later)
    for tx in later:
        assert v0.wait(tx.hash, 30) is not None, "three of four validators must keep committing"
    behind = v3.ledger.height
    assert behind < v0.ledger.height
    running.hub.down.discard(v3.key.public_hex)  # type: ignore[union-attr]
    v3.start()
    v0.submit(anchors(genesis, key, 5, 4))
    wait_for(lambda: v3.ledger.height >= v0.ledger.height - 1)
    for h in range(1, v3.ledger.height + 1):
        assert same_chain([v0, v3], h)


def test_two_of_four_down_halts_without_forking_then_resumes(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey]
) -> None:
    running, genesis, key = cluster
    v0, v1, v2, v3 = (running.nodes[f"validator-{i}"] for i in range(4))
    v0.submit(anchors(genesis, key, 5, 5))
    wait_for(lambda: all(n.ledger.height >= 2 for n in (v0, v1, v2, v3)))
    for node in (v2, v3):
        running.hub.down.add(node.key.public_hex)  # type: ignore[union-attr]
        node.stop()
    stuck = anchors(genesis, key, 10, 6)
    v0.submit(stuck)
    time.sleep(2.0)
    height = v0.ledger.height
    assert v0.wait(stuck[-1].hash, 0.5) is None, "two of four cannot commit"
    assert v1.ledger.height == height
    running.hub.down.discard(v2.key.public_hex)  # type: ignore[union-attr]
    v2.start()
    for tx in stuck:
        assert v0.wait(tx.hash, 30) is not None, (
            "acknowledged transactions commit once a quorum is back"
        )
    wait_for(lambda: v2.ledger.height >= v0.ledger.height - 1)
    for h in range(1, v2.ledger.height + 1):
        assert same_chain([v0, v1, v2], h)


def _governance(
    running: Cluster, genesis: Genesis, key: SuiteKey, method: str, args: dict[str, object]
) -> dict[str, object]:
    """Submit a governance transaction through validator-0 and return its committed receipt."""
    v0 = running.nodes["validator-0"]
    tx = sign_tx(
        key,
        chain_id=genesis.chain_id,
        contract="governance",
        method=method,
        args=args,
        expiry_height=v0.ledger.height + 100,
    )
    v0.submit([tx])
    receipt = v0.wait(tx.hash, 30)
    assert receipt is not None and receipt["status"] == "ok", receipt
    return receipt


def _decide(
    running: Cluster,
    genesis: Genesis,
    proposer: SuiteKey,
    voter: SuiteKey,
    action: str,
    params: dict[str, object],
) -> dict[str, object]:
    """A proposal and the second committee vote that executes it; the vote's receipt."""
    proposal = _governance(
        running, genesis, proposer, "propose", {"action": action, "params": params}
    )
    return _governance(
        running, genesis, voter, "vote", {"proposal": proposal["tx"], "approve": True}
    )


def test_a_validator_added_by_governance_is_admitted_by_the_node_transport(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey], tmp_path: Path
) -> None:
    from chain.server import NodeKeys

    running, genesis, agency = cluster
    admitted = NodeKeys(running.nodes["validator-0"])
    newcomer, stranger = SigningKey.generate(), SigningKey.generate()
    assert genesis.validators[0].pub_key in admitted
    assert genesis.observers[0].pub_key in admitted
    assert newcomer.public_hex not in admitted

    params = {"name": "validator-4", "pub_key": newcomer.public_hex, "power": 1}
    regulator = SuiteHome(tmp_path / "suite").org_key("regulator")
    _decide(running, genesis, agency, regulator, "add_validator", params)

    assert newcomer.public_hex in admitted
    assert stranger.public_hex not in admitted


def test_governance_changes_the_validator_set_at_a_height_boundary(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey], tmp_path: Path
) -> None:
    import copy

    from chain.errors import ProofError
    from chain.server import NodeKeys

    running, genesis, agency = cluster
    v0, v3 = running.nodes["validator-0"], running.nodes["validator-3"]
    suite = SuiteHome(tmp_path / "suite")
    removed = v3.key.public_hex  # type: ignore[union-attr]

    executed = _decide(
        running,
        genesis,
        agency,
        suite.org_key("regulator"),
        "remove_validator",
        {"pub_key": removed},
    )
    changed_at = int(executed["height"])  # type: ignore[call-overload]
    changed = v0.ledger.block(changed_at)
    assert changed is not None
    header = changed[0]
    assert header.next_validators_hash != header.validators_hash
    assert removed not in v0.ledger.validator_powers()
    # ...nor a node the links admit (its genesis entry no longer counts)
    assert removed not in NodeKeys(v0) and genesis.observers[0].pub_key in NodeKeys(v0)
    # the chain keeps committing with three validators, and validator-3 no longer signs
    later = anchors(genesis, agency, 5, 7)
    v0.submit(later)
    for tx in later:
        assert v0.wait(tx.hash, 30) is not None
    top = v0.ledger.height
    last = v0.ledger.block(top)
    assert last is not None
    signers = {s.validator for s in last[1].signatures}
    assert removed not in signers and len(signers) == 3
    # a proof of a later block verifies from the genesis alone, through the certified change
    bundle = v0.ledger.tx_proof(later[-1].hash)
    assert bundle is not None and len(bundle["validator_transitions"]) == 1
    assert verify_bundle(bundle, genesis).facts["status"] == "ok"
    forged = copy.deepcopy(bundle)
    forged["validator_transitions"][0]["validators"].append(
        {"name": "x", "pub_key": "ab" * 32, "power": 1}
    )
    with pytest.raises(ProofError, match="announces another validator set"):
        verify_bundle(forged, genesis)
    with pytest.raises(ProofError, match="not the one the transitions lead to"):
        verify_bundle({**bundle, "validator_transitions": []}, genesis)


def test_an_observer_restarted_with_pending_transactions_gossips_them(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey]
) -> None:
    """Acknowledged by a node that never proposes, then that node restarts: still committed."""
    running, genesis, key = cluster
    observer, v0 = running.nodes["observer-0"], running.nodes["validator-0"]
    running.hub.down.add(observer.engine.transport.me)  # cut off: what it accepts stays with it
    observer.stop()
    held = anchors(genesis, key, 5, 8)
    observer.submit(held)
    running.hub.down.discard(observer.engine.transport.me)
    observer.start()  # as after a restart: its mempool holds acknowledged transactions
    for tx in held:
        assert v0.wait(tx.hash, 30) is not None


def test_a_persisted_lock_keeps_its_block_once_and_restores_lock_and_valid_value(
    backend: str, cluster: tuple[Cluster, Genesis, SuiteKey]
) -> None:
    """The signed state a validator persists before each vote holds the locked block's
    transactions; when the valid block is the locked one it is written once, and both come
    back after a restart."""
    import json

    from chain.consensus.candidate import Candidate
    from chain.consensus.effects import SignedState
    from chain.consensus.signed_state import LAST_SIGNED, signed_state_json

    running, genesis, key = cluster
    v0, observer = running.nodes["validator-0"], running.nodes["observer-0"]
    txs = anchors(genesis, key, 40, 7)
    v0.submit(txs)
    for tx in txs:
        assert v0.wait(tx.hash, 30) is not None
    wait_for(lambda: observer.ledger.height >= v0.ledger.height)
    height = v0.ledger.store.tx(txs[0].hash)[0]  # type: ignore[index]
    header, _ = observer.ledger.block(height)  # type: ignore[misc]
    block = Candidate(header, tuple(observer.engine.block_txs(height)))
    next_height, r1, r2 = Height(height + 1), Round(1), Round(2)
    state = SignedState(next_height, r2, 1, block.hash, r1, block, r1, block)
    text = json.dumps(signed_state_json(state))
    # Each transaction's canonical text (with its "sig" member) is in the persisted JSON once
    assert text.count('\\"sig\\"') == len(block.txs)
    # The observer never signs, so its store is free for the round trip
    observer.ledger.store.put_meta(LAST_SIGNED, text)
    restored = observer.engine.persisted_state()
    assert restored is not None and restored.locked_value is not None
    assert restored.locked_value.hash == block.hash
    assert restored.valid_value is restored.locked_value
    assert [t.hash for t in restored.locked_value.txs] == [t.hash for t in block.txs]
    # A valid block other than the lock is kept in full beside it
    other = SignedState(next_height, r2, 1, None, r1, block, r1, Candidate(header, block.txs))
    again = json.loads(json.dumps(signed_state_json(other)))
    assert again["valid_value"]["header"] == again["locked_value"]["header"]


def test_a_lone_validator_works_off_a_long_backlog_of_full_blocks(
    backend: str, tmp_path: Path
) -> None:
    """Deciding its own proposal at once, a lone validator must start each next height from its
    run loop: starting it from the commit recursed a level per block and the engine died of
    RecursionError after about 200 full blocks."""
    genesis = init_suite(tmp_path / "lone", validators=1, observers=0)
    url, drop = fresh_database_url(backend, tmp_path)
    running = open_cluster(
        tmp_path / "lone",
        database_urls={"validator-0": url},
        timeouts=FAST,
        empty_block_interval_ms=60_000,
        min_block_interval_ms=0,
    )
    node = running.nodes["validator-0"]
    node.engine.max_proposal_txs = node.engine.app.max_block_txs = 1  # every block is full
    txs = anchors(genesis, SuiteHome(tmp_path / "lone").org_key("city-agency"), 400, 3)
    node.submit(txs)
    running.start()
    try:
        wait_for(lambda: node.ledger.height >= 400 or node.engine.fatal is not None, 120)
        assert node.engine.fatal is None
        assert all(node.ledger.store.tx(tx.hash) is not None for tx in txs)
    finally:
        running.stop()
        node.ledger.store.engine.dispose()
        drop()
