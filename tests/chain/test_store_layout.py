"""The block store's transaction rows: keyed by position, found by hash, in old databases too."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine

from chain.block import Certificate, sign_precommit
from chain.ledger import Ledger
from chain.store import BlockStore, TxRow
from chain.tx import Tx


def _commit_anchors(ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]) -> list[Tx]:
    txs = [
        sign(keys.road, "anchors", "anchor", {"root": f"{i:064x}", "count": 1, "label": "x"})
        for i in range(1, 6)
    ]
    result = ledger.execute(
        txs, height=1, time_ms=1_700_000_000_001, proposer=keys.validator.public_hex
    )
    header = result.header
    vote = sign_precommit(
        keys.validator, chain_id=ledger.chain_id, height=1, round_=0, block_hash=header.hash
    )
    ledger.commit(result, Certificate(1, 0, header.hash, [vote]))  # type: ignore[arg-type]
    return txs


def test_a_committed_transaction_is_found_by_its_hash_and_no_other(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    txs = _commit_anchors(ledger, keys, sign)
    for index, tx in enumerate(txs):
        found = ledger.store.tx(tx.hash)
        assert found is not None and found[0] == 1 and found[1] == tx.to_json()
        assert found[2]["index"] == index
    # same first 16 hex digits, another hash: not found
    assert ledger.store.tx(txs[0].hash[:16] + "0" * 48) is None
    assert [body for body, _ in ledger.store.block_txs(1)] == [tx.to_json() for tx in txs]
    # what GET /v1/blocks/{height} lists: the hashes alone, in block order
    assert ledger.store.block_tx_hashes(1) == [tx.hash for tx in txs]
    assert ledger.store.block_tx_hashes(2) == []


def test_a_database_made_before_keeps_its_hash_keyed_table_and_finds_by_hash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        # chain_txs as the store made it before transaction rows were keyed by position
        old.execute(
            "CREATE TABLE chain_txs (hash VARCHAR(64) NOT NULL, height BIGINT NOT NULL,"
            " idx INTEGER NOT NULL, expiry_height BIGINT NOT NULL, body TEXT NOT NULL,"
            " receipt TEXT NOT NULL, PRIMARY KEY (hash))"
        )
        old.execute("CREATE INDEX ix_chain_txs_height ON chain_txs (height)")
        old.execute(
            "INSERT INTO chain_txs VALUES (?, 1, 0, 9, '{\"a\":1}', '{\"b\":2}')", ("ab" * 32,)
        )
    engine = create_engine(f"sqlite:///{path}")
    store = BlockStore(engine)
    assert store.tx("ab" * 32) == (1, {"a": 1}, {"b": 2})
    store.commit_block(
        height=2,
        block_hash="cd" * 32,
        header={},
        certificate={},
        tx_rows=[TxRow("ef" * 32, 0, 9, '{"c":3}', '{"d":4}')],
        changes={},
    )
    assert store.tx("ef" * 32) == (2, {"c": 3}, {"d": 4})
    assert store.block_tx_hashes(1) == ["ab" * 32] and store.block_tx_hashes(2) == ["ef" * 32]
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT height FROM chain_txs WHERE substr(hash, 1, 16) = ?",
            ("ef" * 8,),
        ).all()
    assert "ix_chain_txs_hash_prefix" in str(plan)
    # opening it again does not try to make the index twice
    BlockStore(engine)
    engine.dispose()
