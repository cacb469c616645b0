"""`smartcity`: set up a chain, run nodes or the suite, anchor files, mint tokens, verify proofs.

Every command lives in a module of its own, imported only when that command runs: `--help`
(and each command's `--help`) answers without loading the node, the services, SQLAlchemy,
FastAPI, pandas or scikit-learn. `COMMANDS` names each command's module and the one line that
`smartcity --help` shows for it (a test checks that line against the command's own help).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

DATA = Path("data")
HOME_OPTION = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATA,
    show_default=True,
    help="The suite folder made by `smartcity init` (or `smartcity up`).",
)

# name -> ("module:attribute", the first paragraph of the command's help)
COMMANDS: dict[str, tuple[str, str]] = {
    "anchor": (
        "smartcity.cli_proofs:anchor",
        "Anchor files' SHA-256 hashes on the chain and save each file's proof bundle.",
    ),
    "backup": (
        "smartcity.cli_backup:backup_command",
        "Write a consistent, verifiable snapshot of a node's data to one file.",
    ),
    "credit": ("services.credit.cli:credit", "SME credit models: train and evaluate."),
    "device": (
        "smartcity.devices:device",
        "Road sensors on the chain: register, suspend, reinstate (signed by the road authority).",
    ),
    "gateway": (
        "smartcity.cli_gateway:gateway",
        "The IoT gateway: MQTT in, checked, stored, anchored, forwarded to road-health.",
    ),
    "gov": (
        "smartcity.gov:gov",
        "Governance: the committee admits organisations, validators, contracts and issuers.",
    ),
    "init": (
        "smartcity.cli_suite:init",
        "Create keys, genesis and node homes, with the demo organisations of the applications.",
    ),
    "node": ("smartcity.cli_suite:node", "Run one node and its API."),
    "restore": (
        "smartcity.cli_backup:restore_command",
        "Verify a backup (manifest, hashes, chain, state root) and restore it into a new home.",
    ),
    "road": (
        "services.roadhealth.cli:road",
        "Road health analytics: roughness (IRI) and surface anomaly classification.",
    ),
    "service": (
        "smartcity.cli_suite:service",
        "Run one application service as its own process, against a remote chain node.",
    ),
    "sim": (
        "smartcity.cli_sim:sim",
        "Run the consensus in the deterministic simulator; exit 1 with a replay line on failure.",
    ),
    "token": (
        "smartcity.cli_token:token",
        "Print a short-lived bearer JWT signed with ORG's registered key.",
    ),
    "up": (
        "smartcity.cli_suite:up",
        "Run the whole suite in one process (initialising DATA on first run).",
    ),
    "vc": (
        "services.identity.cli:vc",
        "Issue and verify VC-JOSE, SD-JWT and VC-COSE credentials (vc-jose-cose-test-suite).",
    ),
    "verify-proof": (
        "smartcity.cli_proofs:verify_proof",
        "Verify a proof bundle offline; exit 0 and say what it proves, or exit 1 and say why not.",
    ),
}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: MESSAGE` to stderr and exit with CODE."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_command(name: str) -> click.Command:
    """Import the module of command NAME and return the command."""
    module_name, _, attr = COMMANDS[name][0].partition(":")
    command: click.Command = getattr(importlib.import_module(module_name), attr)
    return command


class LazyGroup(click.Group):
    """Imports a command's module only when that command is used, so `smartcity` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands from `COMMANDS` without importing them."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                stand_in = click.Command(name, help=COMMANDS[name][1])
                rows.append((name, stand_in.get_short_help_str(limit)))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SMARTCITY_CONFIG",
    default=None,
    help="Settings file (TOML); default DATA/smartcity.toml when present. See docs/operations.md.",
)
def main(verbose: bool, config: Path | None) -> None:
    """A city's Blockchain-based Service Network: ledger, identity, SME credit and road health."""
    from smartcity.logs import configure_logging

    if config is not None:
        os.environ["SMARTCITY_CONFIG"] = str(config)
    if verbose:
        os.environ["SMARTCITY_LOG_LEVEL"] = "DEBUG"
    # Lenient here (client commands too); process commands validate settings in _start_process
    configure_logging(force=False)
