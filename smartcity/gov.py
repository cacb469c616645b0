"""`smartcity gov`: committee members propose, vote on and inspect governance proposals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from chain.client import ChainClient, Identity
from chain.contracts.governance import ACTIONS
from chain.errors import ChainError
from chain.tx import sign_tx
from smartcity.cli_common import HOME_OPTION, fail

EXPIRY_BLOCKS = 100


def submit(
    home: Path, org: str, node_url: str | None, contract: str, method: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Sign a transaction as ORG with its key in HOME, submit it and return its receipt."""
    from chain.home import SuiteHome  # here, not at the top: it loads SQLAlchemy

    suite = SuiteHome(home)
    try:
        key, genesis = suite.org_key(org), suite.genesis()
        with ChainClient(node_url or suite.api_url(), identity=Identity(org, key)) as client:
            tx = sign_tx(
                key,
                chain_id=genesis.chain_id,
                contract=contract,
                method=method,
                args=args,
                expiry_height=int(client.status()["height"]) + EXPIRY_BLOCKS,
            )
            receipt = client.submit_and_wait(tx)
    except ChainError as exc:
        fail(str(exc))
    if receipt["status"] != "ok":
        fail(f"{contract}.{method} refused by the chain: {receipt['code']}: {receipt['error']}")
    return receipt


def _read_proposal(home: Path, org: str, node_url: str | None, proposal: str) -> dict[str, Any]:
    from chain.home import SuiteHome

    suite = SuiteHome(home)
    try:
        identity = Identity(org, suite.org_key(org))
        with ChainClient(node_url or suite.api_url(), identity=identity) as client:
            value = client.state("governance", f"proposal:{proposal}", verify_with=suite.genesis())
    except ChainError as exc:
        fail(str(exc))
    if value is None:
        fail(f"no proposal {proposal} on the chain")
    return dict(value)


def _proposal_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """A proposal id as `gov propose` prints it: the proposing transaction's 64-hex hash."""
    cleaned = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", cleaned):
        raise click.BadParameter(
            f"{value!r} is not a proposal id: use the 64-hex id `smartcity gov propose` printed"
        )
    return cleaned


def _summary(pid: str, proposal: dict[str, Any]) -> str:
    return (
        f"proposal {pid}: {proposal['action']} is {proposal['status']}"
        f" (approved by {', '.join(proposal['approvals']) or 'nobody'}"
        f"; rejected by {', '.join(proposal['rejections']) or 'nobody'})"
    )


AS_ORG = click.option("--as", "org", required=True, help="Committee member that signs.")
NODE = click.option("--node", "node_url", default=None, help="Node API URL (default: the suite's).")


@click.group()
def gov() -> None:
    """Governance: the committee admits organisations, validators, contracts and issuers."""


@gov.command()
@click.argument("action", type=click.Choice(sorted(ACTIONS)))
@click.argument("params")
@click.option("--ttl-blocks", type=click.IntRange(1), default=10_000, show_default=True)
@HOME_OPTION
@AS_ORG
@NODE
def propose(
    action: str, params: str, ttl_blocks: int, home: Path, org: str, node_url: str | None
) -> None:
    """Propose ACTION with PARAMS (a JSON object); prints the proposal id on stdout.

    \b
    Example: admit an agency as issuer of a credential type
      smartcity gov propose invoke '{"contract": "identity", "method": "admit_issuer",
        "args": {"org": "city-agency", "types": ["ResidenceCredential"]}}' --as city-agency
    """
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        fail(f"PARAMS is not JSON: {exc.msg} at character {exc.pos}")
    if not isinstance(parsed, dict):
        fail("PARAMS must be a JSON object")
    args = {"action": action, "params": parsed, "ttl_blocks": ttl_blocks}
    receipt = submit(home, org, node_url, "governance", "propose", args)
    pid = str(receipt["tx"])
    click.echo(pid)
    click.echo(_summary(pid, _read_proposal(home, org, node_url, pid)), err=True)


@gov.command()
@click.argument("proposal", callback=_proposal_id)
@click.option("--reject", is_flag=True, help="Vote against (default: approve).")
@HOME_OPTION
@AS_ORG
@NODE
def vote(proposal: str, reject: bool, home: Path, org: str, node_url: str | None) -> None:
    """Vote on PROPOSAL (the id `propose` printed)."""
    # Verify the proposal exists and is still open: a closed one takes no more votes
    current = _read_proposal(home, org, node_url, proposal)
    if current["status"] != "open":
        fail(f"{_summary(proposal, current)}: it takes no more votes")
    submit(home, org, node_url, "governance", "vote", {"proposal": proposal, "approve": not reject})
    click.echo(_summary(proposal, _read_proposal(home, org, node_url, proposal)))


@gov.command()
@click.argument("proposal", callback=_proposal_id)
@HOME_OPTION
@click.option("--as", "org", default="regulator", show_default=True, help="Who reads.")
@NODE
def show(proposal: str, home: Path, org: str, node_url: str | None) -> None:
    """Print PROPOSAL as JSON, verified against its state proof."""
    click.echo(json.dumps(_read_proposal(home, org, node_url, proposal), indent=2, sort_keys=True))
