"""Four validator processes of an sm2-sm3 chain (issue 16) commit over TLS links bound to their
SM2 node keys; a transaction's proof bundle verifies offline with `smartcity verify-proof`
against the genesis, every mutated field of it is refused, and the default suite's genesis
refuses it naming both suites."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.suites import suite_for
from chain.tx import SmTx, sign_tx
from smartcity.cli import main

from ._proccluster import Cluster

pytestmark = pytest.mark.slow  # four node processes: ~15 s to start on a loaded machine

SM = suite_for("sm2-sm3")


def _backend() -> str:
    url = os.environ.get("SMARTCITY_DATABASE_URL", "")
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path, _backend(), crypto="sm2-sm3")
    try:
        for name in running.names:
            running.start(name)
        for name in running.names:
            running.wait_ready(name)
        yield running
    finally:
        running.stop_all()


def verify_proof(bundle: Path, genesis: Path) -> Any:
    args = ["verify-proof", str(bundle), "--genesis", str(genesis)]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar of a bundle with a changed value (hex keeps its length, so only the
    cryptography can notice)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from mutations(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from mutations(item, (*path, index))
    elif isinstance(value, bool) or value is None:
        yield path, "changed"
    elif isinstance(value, int):
        yield path, value + 1
    elif isinstance(value, str):
        yield path, (("1" if value[0] == "0" else "0") + value[1:]) if value else "x"


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def test_an_sm_chain_of_processes_commits_and_its_bundle_verifies_offline(
    cluster: Cluster, tmp_path: Path
) -> None:
    genesis = cluster.suite / "genesis.json"
    assert json.loads(genesis.read_text())["crypto"] == "sm2-sm3"
    tx = sign_tx(
        cluster.key,
        chain_id=cluster.genesis.chain_id,
        contract="anchors",
        method="anchor",
        args={"root": "ab" * 32, "count": 1, "label": "sm-process-test"},
        expiry_height=5000,
    )
    assert isinstance(tx, SmTx) and tx.hash == SM.hash(tx.encode()).hex()
    receipt = cluster.client("validator-1").submit_and_wait(tx, timeout_s=60)
    assert receipt["status"] == "ok", cluster.logs()
    # Verify every validator committed the same SM3-hashed block, certified by SM2 signatures
    height = int(receipt["height"])
    # The receipt says one node has the block on disk; a peer may still be writing (or, on a
    # loaded machine, deciding) it: its status says when its own copy is durable
    deadline = time.monotonic() + 60
    while min(cluster.heights().values(), default=0) < height and time.monotonic() < deadline:
        time.sleep(0.1)
    blocks = {str(cluster.block(name, height)["hash"]) for name in cluster.names}
    assert len(blocks) == 1, cluster.logs()
    # The bundle (fetched with an SM2SM3 bearer token) verifies offline with verify-proof
    document = cluster.client("validator-2").proof(tx.hash)
    bundle = tmp_path / "tx.proof.json"
    bundle.write_text(json.dumps(document))
    verified = verify_proof(bundle, genesis)
    assert verified.exit_code == 0 and verified.output.startswith("VALID"), verified.output
    # Every mutated field fails
    for path, value in mutations(document):
        bundle.write_text(json.dumps(replaced(document, path, value)))
        result = verify_proof(bundle, genesis)
        assert result.exit_code == 1 and "INVALID" in result.output, (path, result.output)
    # The default suite's genesis of the same chain id refuses it, naming both suites
    ed_genesis = tmp_path / "ed-genesis.json"
    ed_value = json.loads(genesis.read_text())
    ed_value["validators"] = [
        {"name": "v", "pub_key": "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"}
    ]
    del ed_value["crypto"], ed_value["organisations"], ed_value["observers"]
    ed_genesis.write_text(json.dumps(ed_value))
    bundle.write_text(json.dumps(document))
    refused = verify_proof(bundle, ed_genesis)
    assert refused.exit_code == 1
    assert (
        "this bundle is from a chain of the sm2-sm3 suite (its block's proposer is an SM2 key),"
        " but the genesis names the ed25519-sha256 suite"
    ) in refused.output.replace("\n", " ")
