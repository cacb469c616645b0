"""`smartcity drop-schemas`: remove a suite's schemas from a shared PostgreSQL.

A suite on PostgreSQL keeps each node and service in a schema named after its genesis
(`chain_<the genesis hash's first 12 hex digits>_<name>`, smartcity.suite.shared_database_url).
Deleting the suite's data folder leaves them on the server; this command drops them, while the
folder still says which they are, or by the suite's tag (`--list` shows every suite's) once the
folder is gone.
"""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.cli_common import DATA, fail, start_process_or_exit


def _tag(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from smartcity.suite import SUITE_TAG_DIGITS, is_suite_tag

    if value is not None and not is_suite_tag(value):
        raise click.BadParameter(
            f"{value!r} is not a suite's tag: {SUITE_TAG_DIGITS} lowercase hex digits"
        )
    return value


@click.command("drop-schemas")
@click.option(
    "--data", type=click.Path(file_okay=False, path_type=Path), default=DATA, show_default=True
)
@click.option(
    "--tag",
    callback=_tag,
    help="The suite's tag (its genesis hash's first 12 hex digits; see --list) instead of its"
    " folder, for a suite whose folder is gone. Whether it still runs elsewhere is not checked.",
)
@click.option("--list", "list_all", is_flag=True, help="List every suite's schemas; drop nothing.")
@click.option("--yes", is_flag=True, help="Drop them without asking.")
def drop_schemas(data: Path, tag: str | None, list_all: bool, yes: bool) -> None:
    """Drop the schemas a suite keeps in a shared PostgreSQL (its folder stays).

    The suite in DATA keeps its nodes and services in schemas of the PostgreSQL that
    SMARTCITY_DATABASE_URL (or the settings file's database_url) names; they are dropped with
    every table in them, after a confirmation unless --yes. A suite that is running is
    refused."""
    from sqlalchemy.exc import SQLAlchemyError

    from chain.db import database_url_from_env
    from chain.errors import ChainError
    from chain.journal import MEMPOOL_FOLDER, in_use
    from smartcity.suite import drop_tagged_schemas, suite_tag, suites_on_server

    has_suite = (data / "genesis.json").is_file()
    if not (has_suite or tag or list_all):
        fail(f"{data} holds no suite (no genesis.json): nothing names its schemas", 2)
    # The settings file's database_url, if any (DATA's, or --config's)
    start_process_or_exit(data if has_suite else None, access_log=False)
    try:
        base = database_url_from_env() or ""
    except ChainError as exc:
        fail(str(exc), 2)
    if not base.startswith("postgresql"):
        where = f": on SQLite they are files in {data}, removed with it" if has_suite else ""
        fail(
            "the suite's databases are not on PostgreSQL (SMARTCITY_DATABASE_URL names none)"
            + where,
            2,
        )
    try:
        if list_all:
            suites = suites_on_server(base)
            for found, schemas in suites.items():
                click.echo(f"{found}  {len(schemas)} schemas: {', '.join(schemas)}")
            if not suites:
                click.echo("no suite's schemas on this server")
            return
        which = f"the suite {tag}" if tag else f"the suite in {data}"
        if tag is None:
            nodes = sorted(p for p in (data / "nodes").glob("*") if p.is_dir())
            running = [p.name for p in nodes if in_use(p / MEMPOOL_FOLDER)]
            if running:
                fail(f"the suite in {data} is running ({', '.join(running)}): stop it first")
            tag = suite_tag(data)
        schemas = suites_on_server(base).get(tag, [])
        if not schemas:
            click.echo(f"no schemas of {which} on this server")
            return
        click.echo("\n".join(schemas))
        if not yes:
            click.confirm(f"Drop these {len(schemas)} schemas and every table in them?", abort=True)
        dropped = drop_tagged_schemas(tag, base)
    except (ChainError, SQLAlchemyError) as exc:
        fail(f"could not drop the suite's schemas: {exc}")
    click.echo(f"dropped {len(dropped)} schemas")
