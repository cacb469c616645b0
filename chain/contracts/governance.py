"""Governance: a committee approves changes to members, roles, validators and contracts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, ValidationError

from chain.contracts import membership
from chain.contracts.framework import Args, Context, Contract, method
from chain.errors import ContractError
from chain.state import StateView

NAMESPACE = "governance"
COMMITTEE_ROLE = "committee"
GOVERNANCE_ORG = "governance"
MAX_TTL_BLOCKS = 100_000


class AddOrg(Args):
    id: str = Field(pattern=membership.ORG_ID)
    name: str = Field(min_length=1, max_length=128)
    roles: list[str] = Field(max_length=16)
    keys: list[str] = Field(min_length=1, max_length=16)


class SetRoles(Args):
    id: str = Field(pattern=membership.ORG_ID)
    roles: list[str] = Field(max_length=16)


class OrgRef(Args):
    id: str = Field(pattern=membership.ORG_ID)


class AddValidator(Args):
    name: str = Field(min_length=1, max_length=64)
    pub_key: str = Field(pattern=membership.PUB_KEY)
    power: int = Field(default=1, ge=1, le=1000)


class ValidatorRef(Args):
    pub_key: str = Field(pattern=membership.PUB_KEY)


class RegisterContract(Args):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    path: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    code_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class SetThreshold(Args):
    num: int = Field(ge=1, le=100)
    den: int = Field(ge=1, le=100)


class Invoke(Args):
    contract: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    method: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    args: dict[str, Any]


ACTIONS: dict[str, type[Args]] = {
    "add_org": AddOrg,
    "set_roles": SetRoles,
    "suspend_org": OrgRef,
    "reinstate_org": OrgRef,
    "add_validator": AddValidator,
    "remove_validator": ValidatorRef,
    "register_contract": RegisterContract,
    "set_threshold": SetThreshold,
    "invoke": Invoke,
}


class ProposeArgs(Args):
    action: Literal[
        "add_org",
        "set_roles",
        "suspend_org",
        "reinstate_org",
        "add_validator",
        "remove_validator",
        "register_contract",
        "set_threshold",
        "invoke",
    ]
    params: dict[str, Any]
    ttl_blocks: int = Field(default=10_000, ge=1, le=MAX_TTL_BLOCKS)


class VoteArgs(Args):
    proposal: str = Field(pattern=r"^[0-9a-f]{64}$")
    approve: bool


def committee(state: StateView) -> list[str]:
    value: list[str] = state.read(NAMESPACE, "committee", [])
    return value


def set_roles(view: StateView, org_id: str, roles: list[str]) -> None:
    """Change an organisation's roles and keep the committee list in step."""
    org = membership.update_org(view.other(membership.NAMESPACE), org_id, roles=sorted(set(roles)))
    members = set(committee(view))
    if COMMITTEE_ROLE in org["roles"]:
        members.add(org_id)
    else:
        members.discard(org_id)
    view.put("committee", sorted(members))


def validator_set(state: StateView) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = state.read(NAMESPACE, "validators", [])
    return value


class Governance(Contract):
    """Proposals pass when approvals exceed the threshold share of the committee."""

    name = NAMESPACE
    system = True

    def __init__(self, invoke: Callable[[Context, StateView, Invoke], None] | None = None) -> None:
        self._invoke = invoke

    def bind(self, invoke: Callable[[Context, StateView, Invoke], None]) -> None:
        """Let approved `invoke` proposals call application contracts as governance."""
        self._invoke = invoke

    @method(ProposeArgs)
    def propose(self, ctx: Context, state: StateView, args: ProposeArgs) -> None:
        self._require_member(ctx, state)
        # Verify the action's parameters now, not when the last vote arrives
        try:
            ACTIONS[args.action].model_validate(args.params)
        except ValidationError as exc:
            raise ContractError("bad_params", f"{args.action}: {exc.errors()[0]['msg']}") from exc
        proposal = {
            "action": args.action,
            "params": args.params,
            "proposer": ctx.sender_org,
            "approvals": [ctx.sender_org],
            "rejections": [],
            "status": "open",
            "height": ctx.height,
            "expiry_height": ctx.height + args.ttl_blocks,
        }
        ctx.emit("proposed", proposal=ctx.tx_hash, action=args.action)
        self._tally(ctx, state, ctx.tx_hash, proposal)

    @method(VoteArgs)
    def vote(self, ctx: Context, state: StateView, args: VoteArgs) -> None:
        self._require_member(ctx, state)
        proposal = state.get(f"proposal:{args.proposal}")
        # Verify the proposal exists, is open, unexpired and not yet voted on by this org
        if proposal is None:
            raise ContractError("unknown_proposal", f"no proposal {args.proposal}")
        if proposal["status"] != "open":
            raise ContractError("proposal_closed", f"proposal is {proposal['status']}")
        if ctx.height > proposal["expiry_height"]:
            raise ContractError(
                "proposal_expired", f"proposal expired at {proposal['expiry_height']}"
            )
        if ctx.sender_org in proposal["approvals"] + proposal["rejections"]:
            raise ContractError("already_voted", f"{ctx.sender_org} already voted")
        side = "approvals" if args.approve else "rejections"
        proposal = {**proposal, side: [*proposal[side], ctx.sender_org]}
        ctx.emit("voted", proposal=args.proposal, org=ctx.sender_org, approve=args.approve)
        self._tally(ctx, state, args.proposal, proposal)

    def _require_member(self, ctx: Context, state: StateView) -> None:
        if ctx.sender_org not in committee(state):
            raise ContractError("forbidden", f"{ctx.sender_org} is not on the governance committee")

    def _tally(self, ctx: Context, state: StateView, pid: str, proposal: dict[str, Any]) -> None:
        config = state.get("config", {"num": 1, "den": 2})
        size = len(committee(state))
        approvals, rejections = len(proposal["approvals"]), len(proposal["rejections"])
        if approvals * config["den"] > size * config["num"]:
            self._apply(ctx, state, proposal["action"], proposal["params"])
            proposal = {**proposal, "status": "executed", "executed_at": ctx.height}
            ctx.emit("executed", proposal=pid, action=proposal["action"])
        elif (size - rejections) * config["den"] <= size * config["num"]:
            proposal = {**proposal, "status": "rejected"}
            ctx.emit("rejected", proposal=pid)
        state.put(f"proposal:{pid}", proposal)

    def _apply(self, ctx: Context, state: StateView, action: str, params: dict[str, Any]) -> None:
        parsed = ACTIONS[action].model_validate(params)
        members = state.other(membership.NAMESPACE)
        if isinstance(parsed, AddOrg):
            membership.admit_org(
                members,
                org_id=parsed.id,
                name=parsed.name,
                roles=[],
                keys=parsed.keys,
                height=ctx.height,
            )
            set_roles(state, parsed.id, parsed.roles)
        elif isinstance(parsed, SetRoles):
            set_roles(state, parsed.id, parsed.roles)
        elif isinstance(parsed, OrgRef):
            status = "suspended" if action == "suspend_org" else "active"
            membership.update_org(members, parsed.id, status=status)
        elif isinstance(parsed, AddValidator):
            membership.require_usable_key(state, parsed.pub_key)
            self._set_validators(
                state,
                parsed.pub_key,
                {"name": parsed.name, "pub_key": parsed.pub_key, "power": parsed.power},
            )
        elif isinstance(parsed, ValidatorRef):
            self._set_validators(state, parsed.pub_key, None)
        elif isinstance(parsed, RegisterContract):
            if state.get(f"contract:{parsed.name}") is not None or parsed.name in SYSTEM_CONTRACTS:
                raise ContractError(
                    "contract_exists", f"contract {parsed.name} is already registered"
                )
            state.put(
                f"contract:{parsed.name}",
                {"path": parsed.path, "code_hash": parsed.code_hash, "height": ctx.height},
            )
        elif isinstance(parsed, SetThreshold):
            if parsed.num >= parsed.den:
                raise ContractError("bad_params", "threshold num/den must be below 1")
            state.put("config", {"num": parsed.num, "den": parsed.den})
        elif isinstance(parsed, Invoke):
            if self._invoke is None:
                raise ContractError(
                    "unsupported", "this node cannot invoke contracts from governance"
                )
            self._invoke(ctx, state, parsed)

    def _set_validators(self, state: StateView, pub_key: str, entry: dict[str, Any] | None) -> None:
        current = [v for v in validator_set(state) if v["pub_key"] != pub_key]
        if entry is None and len(current) == len(validator_set(state)):
            raise ContractError("unknown_validator", f"{pub_key[:16]}… is not a validator")
        if entry is not None and len(current) != len(validator_set(state)):
            raise ContractError("validator_exists", f"{pub_key[:16]}… is already a validator")
        updated = current if entry is None else [*current, entry]
        if not updated:
            raise ContractError("last_validator", "the chain needs at least one validator")
        state.put("validators", sorted(updated, key=lambda v: str(v["pub_key"])))


SYSTEM_CONTRACTS = frozenset({"membership", "governance", "anchors"})
