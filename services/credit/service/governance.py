"""Model versions: registered on the chain, voted by the committee; chain parameters."""

from __future__ import annotations

from typing import Any

from chain.auth import Caller
from services.common.chain import parse_signed
from services.credit import contract_terms, schemas
from services.credit._service_errors import (
    BadInput,
    ModelNotFound,
)
from services.credit.model_store import chain_registration
from services.credit.runtime import Runtime


def ensure_models_registered(*, rt: Runtime, wait: bool = True) -> None:
    """Register every installed model version on the chain (once) with its metrics."""
    for sha, version in rt.models.versions.items():
        if sha in rt.registered:
            continue
        if rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.model_key(sha)) is None:
            args = chain_registration(version)
            if wait:
                receipt = rt.ctx.relay(contract_terms.NAMESPACE, "register_model", args)
                if receipt["status"] != "ok" and receipt["code"] != "model_exists":
                    raise rt.chain.refusal(receipt)
                rt.chain.settle(receipt)
            else:
                rt.ctx.relay(contract_terms.NAMESPACE, "register_model", args, wait=False)
                continue
        rt.registered.add(sha)


def list_models(*, rt: Runtime) -> schemas.ModelList:
    ensure_models_registered(rt=rt)
    chosen = rt.models.active(rt.ctx.ledger)
    active = chosen[0] if chosen else None
    models = [_model_out(rt, sha, active) for sha in sorted(rt.models.versions)]
    return schemas.ModelList(active=active, models=models)


def get_model(*, rt: Runtime, sha256: str) -> schemas.ModelDetail:
    ensure_models_registered(rt=rt)
    chosen = rt.models.active(rt.ctx.ledger)
    out = _model_out(rt, sha256.lower(), chosen[0] if chosen else None)
    if out.chain is None and not out.installed:
        raise ModelNotFound(f"model {sha256} is neither registered nor installed")
    proof = rt.ctx.ledger.state_proof(
        contract_terms.NAMESPACE, contract_terms.model_key(sha256.lower())
    )
    return schemas.ModelDetail(**out.model_dump(), proof=proof)


def _model_out(rt: Runtime, sha: str, active: str | None) -> schemas.ModelOut:
    record = rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.model_key(sha))
    return schemas.ModelOut(
        sha256=sha,
        installed=sha in rt.models.versions,
        active=sha == active,
        status=record["status"] if record else "unregistered",
        data_sha256=record["data_sha256"] if record else None,
        metrics=record["metrics"] if record else None,
        chain=record,
    )


def submit_governance(
    *, rt: Runtime, caller: Caller, sha256: str, raw_tx: dict[str, Any]
) -> schemas.GovernanceOut:
    """Forward a committee member's own signed proposal or vote about a model version."""
    tx = parse_signed(
        raw_tx, signer=caller.key, contract_name="governance", methods={"propose", "vote"}
    )
    # Verify a proposal is about this model's approval or retirement
    if tx.method == "propose" and not _is_model_proposal(tx.args, sha256.lower()):
        raise BadInput(
            f"a proposal here invokes credit.approve_model or credit.retire_model for {sha256}",
            code="wrong_proposal",
        )
    receipt = rt.chain.submit_signed(tx)
    chosen = rt.models.active(rt.ctx.ledger)
    return schemas.GovernanceOut(
        tx=receipt["tx"],
        height=receipt["height"],
        status=receipt["status"],
        events=receipt["events"],
        model=_model_out(rt, sha256.lower(), chosen[0] if chosen else None),
    )


def _is_model_proposal(args: dict[str, Any], sha256: str) -> bool:
    """Whether a governance proposal's args invoke credit.approve_model or retire_model for
    the model `sha256`; its `params` and their `args` are the signer's JSON, of any type."""
    params = args.get("params")
    if args.get("action") != "invoke" or not isinstance(params, dict):
        return False
    call = params.get("args")
    return (
        params.get("contract") == contract_terms.NAMESPACE
        and params.get("method") in ("approve_model", "retire_model")
        and isinstance(call, dict)
        and call.get("sha256") == sha256
    )


def chain_params(*, rt: Runtime) -> schemas.ChainParams:
    height = rt.ctx.ledger.height()
    return schemas.ChainParams(
        chain_id=rt.ctx.genesis.chain_id, height=height, expiry_height=height + 1000
    )
