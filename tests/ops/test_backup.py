"""A node backed up while it runs, restored into a fresh home, serves the same chain and continues.

Runs on SQLite and, when SMARTCITY_DATABASE_URL points at PostgreSQL, on PostgreSQL too.
"""

from __future__ import annotations

import contextlib
import json
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.home import SuiteHome, load_node_home
from chain.light import verify_bundle
from chain.server import RunningNode, open_node
from chain.tx import Tx, sign_tx
from smartcity import backup as backup_module
from smartcity.backup import MANIFEST
from smartcity.cli import main
from smartcity.demo import init_suite

from ..conftest import fresh_database_url


@dataclass
class Source:
    suite: Path
    home: Path
    database_url: str
    running: RunningNode
    tx_hashes: list[str]


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def anchor(suite: Path, running: RunningNode, index: int) -> str:
    key = SuiteHome(suite).org_key("city-agency")
    tx = sign_tx(
        key,
        chain_id=running.node.ledger.chain_id,
        contract="anchors",
        method="anchor",
        args={"root": f"{index:064x}", "count": 1, "label": "ops test"},
        expiry_height=running.node.ledger.height + 50,
    )
    assert running.node.submit_and_wait(tx)["status"] == "ok"
    return tx.hash


@pytest.fixture
def source(tmp_path: Path, db_url: str) -> Iterator[Source]:
    suite = tmp_path / "suite"
    init_suite(suite, validators=1)
    home = suite / "nodes" / "validator-0"
    running = open_node(load_node_home(home), database_url=db_url)
    running.start()
    hashes = [anchor(suite, running, i) for i in range(4)]
    yield Source(suite, home, db_url, running, hashes)
    running.stop()


@pytest.fixture
def target_url(tmp_path: Path, db_url: str) -> Iterator[Callable[[], str]]:
    """Fresh target databases of the same backend as the source."""
    drops = []

    def make() -> str:
        backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        url, drop = fresh_database_url(backend, tmp_path)
        drops.append(drop)
        return url

    yield make
    for drop in drops:
        drop()


def backup(source: Source, out: Path, *extra: str) -> Any:
    env = {"SMARTCITY_DATABASE_URL": source.database_url}
    return run("backup", "--home", str(source.home), "--out", str(out), *extra, env=env)


def test_restored_node_serves_the_same_tip_and_proofs_and_continues(
    source: Source, tmp_path: Path, target_url: Callable[[], str]
) -> None:
    out = tmp_path / "node.backup"
    # taken while the node runs
    made = backup(source, out, "--with-key")
    assert made.exit_code == 0, made.output
    assert "at height 5" in made.output and "key included" in made.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    manifest = json.loads(zipfile.ZipFile(out).read(MANIFEST))
    ledger = source.running.node.ledger
    assert manifest["chain_id"] == ledger.chain_id
    assert manifest["genesis_hash"] == ledger.genesis.hash
    assert manifest["block_hash"] == ledger.store.block(5)[1]["block_hash"]  # type: ignore[index]
    assert manifest["entries"]["tables/chain_txs.jsonl"]["rows"] == 4

    new_home, url = tmp_path / "restored", target_url()
    restored = run("restore", str(out), "--home", str(new_home), "--database-url", url)
    assert restored.exit_code == 0, restored.output
    assert "verified and restored validator-0" in restored.output

    source.running.stop()  # one signer per key: the original stops before its copy starts
    copy = open_node(load_node_home(new_home))
    copy.start()
    try:
        copied = copy.node.ledger
        assert copied.height == 5 and copied.last_header == ledger.last_header
        assert copied.state.root == ledger.state.root
        for tx_hash in source.tx_hashes:
            bundle = copied.tx_proof(tx_hash)
            assert bundle == ledger.tx_proof(tx_hash)
            assert verify_bundle(bundle, ledger.genesis).height >= 2
        # ... and it continues the chain
        anchor(source.suite, copy, 99)
        assert copied.height == 6
    finally:
        copy.stop()


def test_a_damaged_backup_is_refused_with_what_is_wrong(
    source: Source, tmp_path: Path, target_url: Callable[[], str]
) -> None:
    out = tmp_path / "node.backup"
    assert backup(source, out).exit_code == 0
    body = out.read_bytes()

    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(body[: len(body) * 2 // 3])
    refused = run("restore", str(truncated), "--home", str(tmp_path / "a"))
    assert refused.exit_code == 1
    assert "not a complete backup (truncated or not a ZIP)" in refused.output
    assert not (tmp_path / "a").exists()

    # a block's header altered, the manifest left as it was
    tampered = rewrite(out, tmp_path / "tampered.backup", "tables/chain_blocks.jsonl", bump_time)
    refused = run("restore", str(tampered), "--home", str(tmp_path / "b"))
    assert refused.exit_code == 1
    assert "backup corrupt: tables/chain_blocks.jsonl has sha256" in refused.output

    # ... and with the manifest's hash updated to match, the chain itself gives it away
    forged = rewrite(out, tmp_path / "forged.backup", "tables/chain_blocks.jsonl", bump_time, True)
    refused = run("restore", str(forged), "--home", str(tmp_path / "c"))
    assert refused.exit_code == 1
    assert "header does not hash to its recorded hash" in refused.output

    # a state value changed, with its hash and the manifest updated: the state root says no
    forged = rewrite(out, tmp_path / "state.backup", "tables/chain_state.jsonl", forge_state, True)
    refused = run("restore", str(forged), "--home", str(tmp_path / "d"))
    assert refused.exit_code == 1
    assert "state root recomputed from the backup" in refused.output
    assert not any((tmp_path / n).exists() for n in "bcd")

    # a non-empty target
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "node.json").write_text("{}")
    refused = run("restore", str(out), "--home", str(tmp_path / "busy"))
    assert refused.exit_code == 1
    assert "refusing to restore into" in refused.output and "it is not empty" in refused.output

    # the default leaves the key out, and says how to bring it
    restored = run(
        "restore", str(out), "--home", str(tmp_path / "e"), "--database-url", target_url()
    )
    assert restored.exit_code == 0, restored.output
    assert not (tmp_path / "e" / "node_key.jwk").exists()
    assert "holds no node key" in restored.output


def bump_time(lines: list[dict[str, Any]]) -> None:
    header = json.loads(lines[2]["header"])
    header["time_ms"] += 1
    lines[2]["header"] = json.dumps(header)


def forge_state(lines: list[dict[str, Any]]) -> None:
    from chain.state import value_hash

    row = next(r for r in lines if r["namespace"] == "anchors")
    value = json.loads(row["value"])
    forged = {"forged": True} if not isinstance(value, dict) else {**value, "forged": True}
    row["value"] = json.dumps(forged)
    row["value_hash"] = value_hash(forged).hex()


def rewrite(
    source: Path,
    out: Path,
    entry: str,
    change: Callable[[list[dict[str, Any]]], None],
    fix_manifest: bool = False,
) -> Path:
    """A copy of a backup with one table's rows changed (and the manifest updated if asked)."""
    import hashlib

    with zipfile.ZipFile(source) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    lines = [json.loads(line) for line in files[entry].splitlines()]
    change(lines)
    files[entry] = b"".join(
        json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n" for line in lines
    )
    if fix_manifest:
        manifest = json.loads(files[MANIFEST])
        manifest["entries"][entry]["sha256"] = hashlib.sha256(files[entry]).hexdigest()
        files[MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return out


def test_a_backup_of_a_database_holding_another_chain_is_refused(
    source: Source, tmp_path: Path
) -> None:
    """A home of one chain pointed at another chain's database writes no backup."""
    other = tmp_path / "other"
    init_suite(other, validators=1)
    out = tmp_path / "wrong.backup"
    env = {"SMARTCITY_DATABASE_URL": source.database_url}
    home = str(other / "nodes" / "validator-0")
    result = run("backup", "--home", home, "--out", str(out), env=env)
    assert result.exit_code != 0
    assert "the database holds another chain" in result.output
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def hold_pending(source: Source, roots: range, label: str) -> tuple[RunningNode, list[Tx]]:
    """The source node reopened without its producer, holding acknowledged anchors of `roots`
    in its journal, none committed."""
    source.running.stop()
    held = open_node(load_node_home(source.home), database_url=source.database_url)
    key = SuiteHome(source.suite).org_key("city-agency")
    ledger = held.node.ledger
    txs = [
        sign_tx(
            key,
            chain_id=ledger.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{root:064x}", "count": 1, "label": label},
            expiry_height=ledger.height + 50,
        )
        for root in roots
    ]
    held.node.submit(txs)
    return held, txs


def restore_and_commit(
    out: Path, tmp_path: Path, target_url: Callable[[], str], txs: list[Tx], *, pending: int | None
) -> None:
    """Restore `out` into a new home, check the copy starts holding `pending` transactions in
    its own journal (unless None), and that it commits every one of `txs`."""
    new_home = tmp_path / "restored"
    restored = run("restore", str(out), "--home", str(new_home), "--database-url", target_url())
    assert restored.exit_code == 0, restored.output
    copy = open_node(load_node_home(new_home))
    assert pending is None or len(copy.node.mempool) == pending
    copy.start()
    try:
        for tx in txs:
            assert copy.node.wait(tx.hash, timeout_s=20)["status"] == "ok"  # type: ignore[index]
    finally:
        copy.stop()


def test_a_backup_carries_the_transactions_a_node_acknowledged_and_its_copy_commits_them(
    source: Source, tmp_path: Path, target_url: Callable[[], str]
) -> None:
    held, txs = hold_pending(source, range(100, 103), "pending at backup")
    held.node.mempool.close()
    out = tmp_path / "node.backup"
    made = backup(source, out, "--with-key")
    assert made.exit_code == 0, made.output
    manifest = json.loads(zipfile.ZipFile(out).read(MANIFEST))
    assert manifest["entries"]["tables/chain_pending.jsonl"]["rows"] == 3
    restore_and_commit(out, tmp_path, target_url, txs, pending=3)


def test_a_transaction_whose_block_is_stored_while_a_backup_runs_is_in_the_backup(
    source: Source, tmp_path: Path, target_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup reads the journal, then takes the database's snapshot: a block stored in
    between finds its transactions in both, and one stored after the snapshot in the journal's
    part. Read the other way round, a block stored after the snapshot took them out of both."""
    held, txs = hold_pending(source, range(200, 201), "stored during the backup")
    real_snapshot = backup_module._snapshot

    @contextlib.contextmanager
    def snapshot_then_store(url: str) -> Iterator[Any]:
        with real_snapshot(url) as conn:
            held.node.produce_block()  # stored (and released from the journal) now
            yield conn

    monkeypatch.setattr(backup_module, "_snapshot", snapshot_then_store)
    out = tmp_path / "node.backup"
    made = backup(source, out, "--with-key")
    assert made.exit_code == 0, made.output
    assert txs[0].hash in held.node.ledger.live_txs  # the source did commit it
    held.node.mempool.close()
    # The copy holds it pending (SQLite: the snapshot was copied before the block) or finds
    # it committed (PostgreSQL: its snapshot starts at its first read, after the block)
    restore_and_commit(out, tmp_path, target_url, txs, pending=None)
