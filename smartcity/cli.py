"""`smartcity`: set up a chain, run nodes or the suite, anchor files, mint tokens, verify proofs.

Every command lives in a module of its own, imported only when that command runs: `--help`
(and each command's `--help`) answers without loading the node, the services, SQLAlchemy,
FastAPI, pandas or scikit-learn. `COMMANDS` holds, for each command, a function that imports
and returns it (typed, so mypy sees every command) and the one line that `smartcity --help`
shows for it (a test checks that line against the command's own help).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import click


class LazyCommand(NamedTuple):
    """A command imported when it runs, and the line `smartcity --help` shows for it meanwhile."""

    load: Callable[[], click.Command]  # imports the command's module and returns the command
    summary: str  # the first paragraph of the command's own help (a test compares them)


# Each loader imports one command's module when called; typed, so mypy checks every command
def _anchor() -> click.Command:
    from smartcity.cli_proofs import anchor

    return anchor


def _backup() -> click.Command:
    from smartcity.cli_backup import backup_command

    return backup_command


def _credit() -> click.Command:
    from services.credit.cli import credit

    return credit


def _device() -> click.Command:
    from smartcity.devices import device

    return device


def _drop_schemas() -> click.Command:
    from smartcity.cli_schemas import drop_schemas

    return drop_schemas


def _gateway() -> click.Command:
    from smartcity.cli_gateway import gateway

    return gateway


def _gov() -> click.Command:
    from smartcity.gov import gov

    return gov


def _init() -> click.Command:
    from smartcity.cli_suite import init

    return init


def _node() -> click.Command:
    from smartcity.cli_suite import node

    return node


def _restore() -> click.Command:
    from smartcity.cli_backup import restore_command

    return restore_command


def _road() -> click.Command:
    from services.roadhealth.cli import road

    return road


def _service() -> click.Command:
    from smartcity.cli_suite import service

    return service


def _sim() -> click.Command:
    from smartcity.cli_sim import sim

    return sim


def _token() -> click.Command:
    from smartcity.cli_token import token

    return token


def _up() -> click.Command:
    from smartcity.cli_suite import up

    return up


def _vc() -> click.Command:
    from services.identity.cli import vc

    return vc


def _verify_proof() -> click.Command:
    from smartcity.cli_proofs import verify_proof

    return verify_proof


COMMANDS: dict[str, LazyCommand] = {
    "anchor": LazyCommand(
        _anchor, "Anchor files' SHA-256 hashes on the chain and save each file's proof bundle."
    ),
    "backup": LazyCommand(
        _backup, "Write a consistent, verifiable snapshot of a node's data to one file."
    ),
    "credit": LazyCommand(_credit, "SME credit models: train and evaluate."),
    "device": LazyCommand(
        _device,
        "Road sensors on the chain: register, suspend, reinstate (signed by the road authority).",
    ),
    "drop-schemas": LazyCommand(
        _drop_schemas, "Drop the schemas a suite keeps in a shared PostgreSQL (its folder stays)."
    ),
    "gateway": LazyCommand(
        _gateway, "The IoT gateway: MQTT in, checked, stored, anchored, forwarded to road-health."
    ),
    "gov": LazyCommand(
        _gov, "Governance: the committee admits organisations, validators, contracts and issuers."
    ),
    "init": LazyCommand(
        _init,
        "Create keys, genesis and node homes, with the demo organisations of the applications.",
    ),
    "node": LazyCommand(_node, "Run one node and its API."),
    "restore": LazyCommand(
        _restore,
        "Verify a backup (manifest, hashes, chain, state root) and restore it into a new home.",
    ),
    "road": LazyCommand(
        _road, "Road health analytics: roughness (IRI) and surface anomaly classification."
    ),
    "service": LazyCommand(
        _service, "Run one application service as its own process, against a remote chain node."
    ),
    "sim": LazyCommand(
        _sim,
        "Run the consensus in the deterministic simulator; exit 1 with a replay line on failure.",
    ),
    "token": LazyCommand(
        _token, "Print a short-lived bearer JWT signed with ORG's registered key."
    ),
    "up": LazyCommand(_up, "Run the whole suite in one process (initialising DATA on first run)."),
    "vc": LazyCommand(
        _vc, "Issue and verify VC-JOSE, SD-JWT and VC-COSE credentials (vc-jose-cose-test-suite)."
    ),
    "verify-proof": LazyCommand(
        _verify_proof,
        "Verify a proof bundle offline; exit 0 and say what it proves, or exit 1 and say why not.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import the module of command NAME and return the command."""
    return COMMANDS[name].load()


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
                stand_in = click.Command(name, help=COMMANDS[name].summary)
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
    # Lenient here (client commands too); process commands validate settings at their start
    configure_logging(force=False)
