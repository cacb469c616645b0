"""Membership: organisations, their keys and roles — the chain's one trust registry."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chain.contracts.framework import Args, Context, Contract, method
from chain.errors import ContractError
from chain.state import StateView
from chain.suites import DEFAULT_SUITE, suite_for

NAMESPACE = "membership"
ORG_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"
# A key of either suite, Ed25519 (64 hex digits) or SM2 (130): require_usable_key checks it is
# one of the chain's suite, which genesis records in governance's state unless it is the default
PUB_KEY = r"^[0-9a-f]{64}(?:[0-9a-f]{66})?$"
SUITE_KEY = ("governance", "crypto")
KEY_SHAPES = {
    "ed25519-sha256": "Ed25519 public key (ed25519-sha256 suite: 64 hex digits)",
    "sm2-sm3": "SM2 public key (sm2-sm3 suite: 130 hex digits, 04 || X || Y on the curve)",
}
ROLE = r"^[a-z][a-z_]{1,31}$"


def org_key(org_id: str) -> str:
    return f"org:{org_id}"


def key_key(pub_key: str) -> str:
    return f"key:{pub_key}"


class KeyArgs(Args):
    pub_key: str = Field(pattern=PUB_KEY)


def chain_suite(state: StateView) -> str:
    """The chain's crypto suite, as its genesis recorded it."""
    name: str = state.read(*SUITE_KEY) or DEFAULT_SUITE
    return name


def require_usable_key(state: StateView, pub_key: str) -> None:
    suite = chain_suite(state)
    # Verify the key is one the chain's suite verifies against (not weak, on the curve)
    if not suite_for(suite).is_usable_public_key(pub_key):
        raise ContractError("bad_key", f"{pub_key[:16]}… is not a usable {KEY_SHAPES[suite]}")


def get_org(state: StateView, org_id: str) -> dict[str, Any] | None:
    value: dict[str, Any] | None = state.read(NAMESPACE, org_key(org_id))
    return value


def resolve_key(state: StateView, pub_key: str) -> tuple[str, frozenset[str]] | None:
    """The active organisation and roles of an active key, or None."""
    record = state.read(NAMESPACE, key_key(pub_key))
    if record is None or record["status"] != "active":
        return None
    org = get_org(state, record["org"])
    if org is None or org["status"] != "active":
        return None
    return record["org"], frozenset(org["roles"])


def admit_org(
    view: StateView, *, org_id: str, name: str, roles: list[str], keys: list[str], height: int
) -> None:
    """Register an organisation with its keys (genesis and governance only)."""
    # Verify every key is usable and neither the organisation nor any key exists yet
    for pub in keys:
        require_usable_key(view, pub)
    if view.get(org_key(org_id)) is not None:
        raise ContractError("org_exists", f"organisation {org_id} already exists")
    for pub in keys:
        if view.get(key_key(pub)) is not None:
            raise ContractError("key_exists", f"key {pub[:16]}… is already registered")
    view.put(
        org_key(org_id),
        {
            "id": org_id,
            "name": name,
            "roles": sorted(set(roles)),
            "keys": list(keys),
            "status": "active",
            "since": height,
        },
    )
    for pub in keys:
        view.put(key_key(pub), {"org": org_id, "status": "active", "since": height})


def update_org(view: StateView, org_id: str, **changes: Any) -> dict[str, Any]:
    org = view.get(org_key(org_id))
    if org is None:
        raise ContractError("unknown_org", f"no organisation {org_id}")
    org = {**org, **changes}
    view.put(org_key(org_id), org)
    return dict(org)


class Membership(Contract):
    """Organisations manage their own keys; admission and roles go through governance."""

    name = NAMESPACE
    system = True

    @method(KeyArgs)
    def add_key(self, ctx: Context, state: StateView, args: KeyArgs) -> None:
        # Verify the key is usable and new
        require_usable_key(state, args.pub_key)
        if state.get(key_key(args.pub_key)) is not None:
            raise ContractError("key_exists", f"key {args.pub_key[:16]}… is already registered")
        org = state.get(org_key(ctx.sender_org))
        update_org(state, ctx.sender_org, keys=[*org["keys"], args.pub_key])
        state.put(
            key_key(args.pub_key), {"org": ctx.sender_org, "status": "active", "since": ctx.height}
        )
        ctx.emit("key_added", org=ctx.sender_org, pub_key=args.pub_key)

    @method(KeyArgs)
    def revoke_key(self, ctx: Context, state: StateView, args: KeyArgs) -> None:
        record = state.get(key_key(args.pub_key))
        # Verify the key belongs to the sender's organisation and is not its last
        if record is None or record["org"] != ctx.sender_org:
            raise ContractError("unknown_key", "the key is not one of your organisation's keys")
        if record["status"] != "active":
            raise ContractError("key_revoked", "the key is already revoked")
        org = state.get(org_key(record["org"]))
        active = [k for k in org["keys"] if k != args.pub_key]
        if not active:
            raise ContractError("last_key", "an organisation cannot revoke its last key")
        update_org(state, record["org"], keys=active)
        state.put(key_key(args.pub_key), {**record, "status": "revoked", "revoked_at": ctx.height})
        ctx.emit("key_revoked", org=record["org"], pub_key=args.pub_key)
