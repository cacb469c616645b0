"""State roots recorded from the chain's own history: a faster tree or block store must give the
same roots for the same transactions, or every existing chain would stop verifying."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import SimpleNamespace

from chain import smt
from chain.block import Certificate, sign_precommit
from chain.ledger import Ledger
from chain.tx import Tx

# Roots of the tree below after each step, computed by the tree as it was before issue 12's
# changes (chain/smt.py at 6a3481c)
RECORDED_TREE_ROOTS = [
    "e6792f7ad799578b39d1c0fc46bb8f9f366f3f368868fdc8bf533e61b48003d5",
    "480c109929ebf3a01bbe836729fee49884dedfc7638f9c79679001b9c30a213b",
    "41616f63571c612923625077bbc2cee84b307372684bb990b076d60851f56516",
    "a229f6923e4dc3c16562a65a8bf2cfba372994e90ffc7a2c93c172cb18ac1005",
    "92f5043e98a71ae8bae1b0514505a9271f66f418f75e139676837c9d53755595",
    "2aeacc64866eb5b31328de7a4fa842037964f83f7afc04a6c9d4ba45be461f7d",
    "a989ec70ac7506a8368e0fb23ab4690ddee6b20be011742e1dbf31002949ceff",
    "d97e5dc2791795eec0928f14fcad31520a153d2905081188f1736f005b113986",
    "b53979c2cddcdcfb48cc4700c71008570df369eba96bf48fdf5db8f75a87a52d",
]
# State roots of the three blocks of anchors below, the same way
RECORDED_LEDGER_ROOTS = [
    "2d5e5e05b16186292e80d3465daf18bcf2204aba3d02fec4810e6af48cd3e74a",
    "d43943c3981af6b13e051ee892114799b8cc2f3b52ca8edeff9b6aca6354b3ef",
    "3c7b6663f4d75b18c20aae3314ec31a7814c73efd0a7597b3c1a51e9f6f8aec9",
]


def _entry(i: int, tag: bytes = b"v") -> tuple[bytes, bytes]:
    key = hashlib.sha256(i.to_bytes(4, "big")).digest()
    return key, hashlib.sha256(tag + key).digest()


def _tree_roots() -> list[str]:
    tree = smt.Tree()
    roots = []
    start = 0
    # batches of several sizes, a deletion of every third key, new values for some, a deletion
    # of all but a few (the tree collapses), then a rebuild from the surviving entries
    for size in (1, 1, 7, 500, 991, 1500):
        tree = tree.update(_entry(i) for i in range(start, start + size))
        roots.append(tree.root_hash.hex())
        start += size
    tree = tree.update((_entry(i)[0], None) for i in range(0, start, 3))
    roots.append(tree.root_hash.hex())
    tree = tree.update(_entry(i, b"w") for i in range(1, start, 7))
    roots.append(tree.root_hash.hex())
    tree = tree.update((_entry(i)[0], None) for i in range(start) if i % 500 != 1)
    roots.append(tree.root_hash.hex())
    return roots


def test_sparse_tree_roots_match_the_recorded_ones() -> None:
    assert _tree_roots() == RECORDED_TREE_ROOTS


def _anchors(sign: Callable[..., Tx], keys: SimpleNamespace, block: int) -> list[Tx]:
    return [
        sign(
            keys.road,
            "anchors",
            "anchor",
            {"root": f"{block:016x}{i:048x}", "count": i + 1, "label": "recorded"},
            nonce=block * 1000 + i,
        )
        for i in range(300)
    ]


def test_block_state_roots_match_the_recorded_ones(
    make_ledger: Callable[..., Ledger], keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    ledger = make_ledger()
    roots = []
    for block in range(1, 4):
        txs = _anchors(sign, keys, block)
        result = ledger.execute(
            txs, height=block, time_ms=1_700_000_000_000 + block, proposer=keys.validator.public_hex
        )
        assert all(r.ok for r in result.receipts)
        header = result.header
        vote = sign_precommit(
            keys.validator,
            chain_id=ledger.chain_id,
            height=block,
            round_=0,
            block_hash=header.hash,
        )
        ledger.commit(result, Certificate(block, 0, header.hash, [vote]))  # type: ignore[arg-type]
        roots.append(header.state_root)
    assert roots == RECORDED_LEDGER_ROOTS
    # a restarted node rebuilds the same root from the stored state
    assert make_ledger().state.root.hex() == RECORDED_LEDGER_ROOTS[-1]
