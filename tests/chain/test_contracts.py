"""System contracts and block execution: membership, governance, anchors, receipts."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chain.block import Certificate, sign_precommit
from chain.contracts.framework import code_hash, load_contract
from chain.crypto import SigningKey
from chain.errors import GenesisError
from chain.ledger import BlockResult, InvalidBlock, Ledger
from chain.tx import Tx

ROOT = "ab" * 32


def commit(ledger: Ledger, validator: SigningKey, txs: list[Tx]) -> BlockResult:
    """Execute and commit one block with a single validator's certificate."""
    height = ledger.height + 1
    result = ledger.execute(
        txs, height=height, time_ms=1_700_000_000_000 + height, proposer=validator.public_hex
    )
    sig = sign_precommit(
        validator, chain_id=ledger.chain_id, height=height, round_=0, block_hash=result.header.hash
    )
    ledger.commit(result, Certificate(result.header.height, 0, result.header.hash, [sig]))  # type: ignore[arg-type]
    return result


@pytest.fixture
def run(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> Callable[..., list[dict[str, Any]]]:
    """run((key, contract, method, args), ...) commits them as one block and returns receipts."""

    def go(*calls: tuple[SigningKey, str, str, dict[str, Any]]) -> list[dict[str, Any]]:
        txs = [sign(k, c, m, a) for k, c, m, a in calls]
        return [r.to_json() for r in commit(ledger, keys.validator, txs).receipts]

    return go


def test_a_failed_transaction_never_aborts_its_block(
    run: Callable[..., list[dict[str, Any]]], keys: SimpleNamespace, ledger: Ledger
) -> None:
    args = {"root": ROOT, "count": 2, "label": "batch"}
    receipts = run(
        (keys.agency, "anchors", "anchor", args),
        (keys.agency, "anchors", "anchor", args),
        (keys.bank, "anchors", "anchor", {**args, "root": "cd" * 32}),
        (keys.bank, "anchors", "anchor", args),
    )
    # a root is anchored once per organisation; another organisation may anchor it too
    assert [r["status"] for r in receipts] == ["ok", "failed", "ok", "ok"]
    assert receipts[1]["code"] == "already_anchored" and receipts[0]["tx"] in receipts[1]["error"]
    assert receipts[0]["events"][0]["name"] == "anchored"
    assert receipts[1]["events"] == []
    assert ledger.read("anchors", f"root:bank-a:{'cd' * 32}") == receipts[2]["tx"]


def test_governance_admits_an_organisation_by_majority(
    run: Callable[..., list[dict[str, Any]]], keys: SimpleNamespace, ledger: Ledger
) -> None:
    newcomer = SigningKey.from_seed(b"n" * 32)
    params = {"id": "bank-b", "name": "Bank B", "roles": ["bank"], "keys": [newcomer.public_hex]}
    proposed = run((keys.agency, "governance", "propose", {"action": "add_org", "params": params}))[
        0
    ]
    assert proposed["status"] == "ok"
    pid = proposed["tx"]
    assert ledger.resolve_key(newcomer.public_hex) is None  # one of three is not a majority
    voted = run(
        (keys.bank, "governance", "vote", {"proposal": pid, "approve": True}),
        (keys.road, "governance", "vote", {"proposal": pid, "approve": True}),
    )
    assert voted[0]["code"] == "forbidden" and "committee" in voted[0]["error"]
    assert voted[1]["status"] == "ok"
    assert ledger.resolve_key(newcomer.public_hex) == ("bank-b", frozenset({"bank"}))
    late = run((keys.regulator, "governance", "vote", {"proposal": pid, "approve": True}))[0]
    assert late["code"] == "proposal_closed"


def test_governance_rejection_and_bad_proposals(
    run: Callable[..., list[dict[str, Any]]], keys: SimpleNamespace, ledger: Ledger
) -> None:
    pid = run(
        (
            keys.agency,
            "governance",
            "propose",
            {"action": "suspend_org", "params": {"id": "bank-a"}},
        )
    )[0]["tx"]
    receipts = run(
        (keys.road, "governance", "vote", {"proposal": pid, "approve": False}),
        (keys.regulator, "governance", "vote", {"proposal": pid, "approve": False}),
    )
    assert [r["status"] for r in receipts] == ["ok", "ok"]
    assert ledger.read("governance", f"proposal:{pid}")["status"] == "rejected"
    assert ledger.resolve_key(keys.bank.public_hex) is not None
    bad = run((keys.agency, "governance", "propose", {"action": "add_org", "params": {"id": "X"}}))[
        0
    ]
    assert bad["code"] == "bad_params"
    again = run((keys.agency, "governance", "vote", {"proposal": pid, "approve": True}))[0]
    assert again["code"] == "proposal_closed"


def test_suspended_organisation_loses_its_keys(
    run: Callable[..., list[dict[str, Any]]], keys: SimpleNamespace, ledger: Ledger
) -> None:
    # Resolved (and remembered) before the suspension: the commit that suspends forgets it
    assert ledger.resolve_key(keys.bank.public_hex) is not None
    pid = run(
        (
            keys.agency,
            "governance",
            "propose",
            {"action": "suspend_org", "params": {"id": "bank-a"}},
        )
    )[0]["tx"]
    assert ledger.resolve_key(keys.bank.public_hex) is not None
    run((keys.road, "governance", "vote", {"proposal": pid, "approve": True}))
    assert ledger.resolve_key(keys.bank.public_hex) is None
    receipt = run((keys.bank, "anchors", "anchor", {"root": ROOT, "count": 1, "label": "x"}))[0]
    assert receipt["code"] == "unknown_sender"


def test_membership_key_rotation(
    run: Callable[..., list[dict[str, Any]]], keys: SimpleNamespace, ledger: Ledger
) -> None:
    second = SigningKey.from_seed(b"s" * 32)
    assert (
        run((keys.bank, "membership", "add_key", {"pub_key": second.public_hex}))[0]["status"]
        == "ok"
    )
    assert ledger.resolve_key(second.public_hex) == ("bank-a", frozenset({"bank"}))
    assert (
        run((keys.agency, "membership", "revoke_key", {"pub_key": second.public_hex}))[0]["code"]
        == "unknown_key"
    )
    assert (
        run((second, "membership", "revoke_key", {"pub_key": keys.bank.public_hex}))[0]["status"]
        == "ok"
    )
    assert ledger.resolve_key(keys.bank.public_hex) is None
    assert (
        run((second, "membership", "revoke_key", {"pub_key": second.public_hex}))[0]["code"]
        == "last_key"
    )


CONTRACT_SOURCE = """
from pydantic import Field
from chain.contracts.framework import Args, Context, Contract, method
from chain.errors import ContractError
from chain.state import StateView


class Bump(Args):
    by: int = Field(ge=1, le=10)


class Counter(Contract):
    name = "counter"

    @method(Bump)
    def bump(self, ctx: Context, state: StateView, args: Bump) -> None:
        state.put("n", state.get("n", 0) + args.by)
        ctx.emit("bumped", n=state.get("n"))

    @method(Bump)
    def reset(self, ctx: Context, state: StateView, args: Bump) -> None:
        ctx.require_role("governance")
        state.put("n", 0)
"""


@pytest.fixture
def counter_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"counter_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(CONTRACT_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name  # type: ignore[misc]
    sys.modules.pop(name, None)


def register(
    run: Callable[..., list[dict[str, Any]]], keys: SimpleNamespace, module: str, code_hash: str
) -> None:
    params = {"name": "counter", "path": f"{module}:Counter", "code_hash": code_hash}
    pid = run(
        (keys.agency, "governance", "propose", {"action": "register_contract", "params": params})
    )[0]["tx"]
    run((keys.road, "governance", "vote", {"proposal": pid, "approve": True}))


def test_application_contract_registered_by_governance(
    run: Callable[..., list[dict[str, Any]]],
    keys: SimpleNamespace,
    ledger: Ledger,
    counter_module: str,
    make_ledger: Callable[..., Ledger],
    tmp_path: Path,
) -> None:
    source = (tmp_path / f"{counter_module}.py").read_text()
    register(run, keys, counter_module, hashlib.sha256(source.encode()).hexdigest())
    receipts = run(
        (keys.bank, "counter", "bump", {"by": 2}), (keys.bank, "counter", "reset", {"by": 1})
    )
    assert receipts[0]["events"][0]["data"] == {"n": 2}
    assert receipts[1]["code"] == "forbidden"
    # only an approved proposal may call a governance-only method
    call = {"contract": "counter", "method": "reset", "args": {"by": 1}}
    pid = run((keys.agency, "governance", "propose", {"action": "invoke", "params": call}))[0]["tx"]
    run((keys.road, "governance", "vote", {"proposal": pid, "approve": True}))
    assert ledger.read("counter", "n") == 0
    # a restarted node installs it again from the chain's registry
    assert "counter" in make_ledger().registry


def test_node_refuses_contract_code_that_differs_from_the_chain(
    run: Callable[..., list[dict[str, Any]]],
    keys: SimpleNamespace,
    counter_module: str,
    make_ledger: Callable[..., Ledger],
) -> None:
    with pytest.raises(GenesisError, match="code hash"):
        register(run, keys, counter_module, "00" * 32)
    with pytest.raises(GenesisError, match="install the matching version"):
        make_ledger()


def test_invalid_blocks_are_refused(
    ledger: Ledger, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    tx = sign(keys.agency, "anchors", "anchor", {"root": ROOT, "count": 1, "label": "x"})
    with pytest.raises(InvalidBlock, match="does not follow"):
        ledger.execute([tx], height=5, time_ms=1, proposer=keys.validator.public_hex)
    with pytest.raises(InvalidBlock, match="included twice"):
        ledger.execute([tx, tx], height=1, time_ms=1, proposer=keys.validator.public_hex)
    result = ledger.execute([tx], height=1, time_ms=1, proposer=keys.validator.public_hex)
    forged = sign_precommit(
        keys.agency, chain_id=ledger.chain_id, height=1, round_=0, block_hash=result.header.hash
    )
    with pytest.raises(InvalidBlock, match="not a validator"):
        ledger.commit(result, Certificate(1, 0, result.header.hash, [forged]))  # type: ignore[arg-type]
    assert ledger.height == 0


def test_a_contract_in_two_modules_is_pinned_by_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # protocol.md section 9: the class's module, then for each of code_modules a NUL, its name,
    # a NUL and its source; a change to the terms module is a change to the contract
    stem = f"split_{tmp_path.name.replace('-', '_')}"
    terms, main = f"{stem}_terms", f"{stem}_main"
    terms_source = "LIMIT = 5\n"
    main_source = textwrap.dedent(f"""
        from chain.contracts.framework import Contract
        from {terms} import LIMIT

        class Split(Contract):
            name = "split"
            code_modules = ("{terms}",)
        """)
    (tmp_path / f"{terms}.py").write_text(terms_source)
    (tmp_path / f"{main}.py").write_text(main_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cls = load_contract(f"{main}:Split")
        expected = hashlib.sha256(
            main_source.encode() + b"\0" + terms.encode() + b"\0" + terms_source.encode()
        ).hexdigest()
        assert code_hash(cls) == expected
        (tmp_path / f"{terms}.py").write_text("LIMIT = 6\n")  # the terms change, the class not
        sys.modules.pop(terms)
        assert code_hash(cls) != expected
    finally:
        sys.modules.pop(terms, None)
        sys.modules.pop(main, None)


def _count_anchor_parses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments of every parse of an anchor's arguments from now on, in order."""
    from chain.contracts.anchors import AnchorArgs

    parses: list[dict[str, Any]] = []
    validate = AnchorArgs.model_validate

    def counted(value: Any, *args: Any, **kwargs: Any) -> AnchorArgs:
        parses.append(value)
        return validate(value, *args, **kwargs)

    monkeypatch.setattr(AnchorArgs, "model_validate", counted)
    return parses


def test_a_block_reuses_the_doors_parse_of_each_transactions_arguments(
    ledger: Ledger,
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The door parses a transaction's arguments to refuse bad ones; executing it in a block
    must not parse them again (each node parsed every transaction twice), yet must give the
    receipt and state a fresh parse would."""
    parses = _count_anchor_parses(monkeypatch)
    txs = [
        sign(keys.agency, "anchors", "anchor", {"root": f"{i:064x}", "count": 3, "label": "b"})
        for i in range(1, 4)
    ]
    for tx in txs:
        ledger.check_tx(tx)
    assert len(parses) == 3
    result = commit(ledger, keys.validator, txs)
    assert len(parses) == 3  # execution reused what the door parsed
    assert [r.ok for r in result.receipts] == [True, True, True]
    assert ledger.state.get("anchors", f"batch:{txs[0].hash}")["count"] == 3
    # A transaction the door never saw (a peer's block) is parsed when it executes, and its
    # bad arguments fail its receipt, not the block
    fresh = sign(keys.agency, "anchors", "anchor", {"root": "ee" * 32, "count": 1, "label": "x"})
    bad = sign(keys.agency, "anchors", "anchor", {"root": "ff" * 32, "count": "1", "label": "x"})
    receipts = commit(ledger, keys.validator, [fresh, bad]).receipts
    assert len(parses) == 5
    assert receipts[0].ok and not receipts[1].ok and receipts[1].code == "bad_args"


def test_a_doors_parse_serves_one_execution_and_only_the_model_that_made_it(
    ledger: Ledger,
    keys: SimpleNamespace,
    sign: Callable[..., Tx],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round that does not commit executes a block, and a later round executes it again: the
    second execution parses afresh (a handler may have changed a list or dict inside the first
    parse). A parse made under one model of a method is not used under another."""
    from pydantic import field_validator

    from chain.contracts.anchors import AnchorArgs
    from chain.contracts.framework import Method
    from chain.errors import TxRejected

    parses = _count_anchor_parses(monkeypatch)
    tx = sign(keys.agency, "anchors", "anchor", {"root": "ab" * 32, "count": 3, "label": "b"})
    ledger.check_tx(tx)
    height, proposer = ledger.height + 1, keys.validator.public_hex
    for _ in range(2):
        result = ledger.execute([tx], height=height, time_ms=1_800_000_000_000, proposer=proposer)
        assert result.receipts[0].ok
    assert len(parses) == 2  # the door's parse served the first execution only

    class AtMostTwo(AnchorArgs):
        @field_validator("count")
        @classmethod
        def small(cls, value: int) -> int:
            if value > 2:
                raise ValueError("at most 2")
            return value

    monkeypatch.delattr(AnchorArgs, "model_validate")  # the model's own again, for subclasses
    other = sign(keys.agency, "anchors", "anchor", {"root": "cd" * 32, "count": 3, "label": "b"})
    ledger.check_tx(other)  # parsed and kept under the model of the time
    contract = ledger.registry.get("anchors")
    old = contract.methods["anchor"]
    monkeypatch.setitem(type(contract).methods, "anchor", Method("anchor", AtMostTwo, old.handler))
    with pytest.raises(TxRejected, match="at most 2"):
        ledger.check_tx(other)
