"""`smartcity token`: a short-lived bearer JWT signed with an organisation's registered key."""

from __future__ import annotations

from pathlib import Path

import click

from chain.auth import AUDIENCE_CHAIN, DEFAULT_TTL_S, MAX_TTL_S, AuthError, mint_token
from chain.errors import ChainError
from smartcity.cli_common import HOME_OPTION, fail
from smartcity.registry import SERVICES

# What a token may be for: a node's API and each service the suite mounts (smartcity.registry)
AUDIENCES = (AUDIENCE_CHAIN, *(entry.name for entry in SERVICES))


@click.command()
@HOME_OPTION
@click.option("--as", "org", required=True, help="Organisation whose key signs the token.")
@click.option(
    "--audience",
    type=click.Choice(AUDIENCES),
    default=AUDIENCE_CHAIN,
    show_default=True,
    help="Service the token is for: the chain API or one of the application services.",
)
@click.option(
    "--ttl",
    type=click.IntRange(1, MAX_TTL_S),
    default=DEFAULT_TTL_S,
    show_default=True,
    help="Lifetime in seconds.",
)
def token(home: Path, org: str, audience: str, ttl: int) -> None:
    """Print a short-lived bearer JWT signed with ORG's registered key."""
    from chain.home import SuiteHome

    try:
        key = SuiteHome(home).org_key(org)
        click.echo(mint_token(key, org=org, audience=audience, ttl_s=ttl))
    except (ChainError, AuthError) as exc:
        fail(str(exc))
