"""`smartcity backup` and `smartcity restore`; the format and its checks are in smartcity.backup."""

from __future__ import annotations

from pathlib import Path

import click

from chain.errors import ChainError
from smartcity.cli_common import fail


@click.command("backup")
@click.option(
    "--home",
    "node_home",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="The node home to back up (DATA/nodes/<name>); the node may be running.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Backup file to write.")
@click.option(
    "--with-key",
    is_flag=True,
    help="Include the node's private key (the file is 0600 either way; guard it like the key).",
)
def backup_command(node_home: Path, out: Path, with_key: bool) -> None:
    """Write a consistent, verifiable snapshot of a node's data to one file."""
    from chain.db import database_url_from_env
    from chain.home import load_node_home
    from smartcity.backup import create_backup, manifest_digest

    try:
        home = load_node_home(node_home)
        url = database_url_from_env()
        try:
            info = create_backup(home, out, database_url=url, with_key=with_key)
        except ChainError as first:
            # A node of a suite `up` runs on a shared PostgreSQL keeps its data in a schema of
            # its own inside that server's URL: read it there before giving up
            data = node_home.resolve().parent.parent
            if node_home.resolve().parent.name != "nodes" or not (data / "genesis.json").exists():
                raise
            from smartcity.suite import shared_database_url

            shared = shared_database_url(data, home.settings.name, url, create=False)
            if shared is None:
                raise
            try:
                info = create_backup(home, out, database_url=shared, with_key=with_key)
            except ChainError:
                raise first from None
    except ChainError as exc:
        fail(str(exc))
    m = info.manifest
    rows = sum(e.get("rows", 0) for e in m["entries"].values())
    click.echo(
        f"backed up {m['node']} of chain {m['chain_id']} at height {m['height']}"
        f" (block {str(m['block_hash'])[:16]}…): {rows} rows,"
        f" key {'included' if with_key else 'not included'}, to {out}"
        f" ({out.stat().st_size} bytes, manifest {manifest_digest(m)})"
    )


@click.command("restore")
@click.argument("backup", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--home",
    "new_home",
    type=click.Path(path_type=Path),
    required=True,
    help="A new, empty node home to create.",
)
@click.option(
    "--database-url",
    default=None,
    help="Restore into this database and record it in node.json (default:"
    " SMARTCITY_DATABASE_URL, else NEW_HOME/chain.db).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Install this node key (for a backup made without --with-key).",
)
def restore_command(
    backup: Path, new_home: Path, database_url: str | None, key_file: Path | None
) -> None:
    """Verify a backup (manifest, hashes, chain, state root) and restore it into a new home."""
    from chain.db import database_url_from_env
    from smartcity.backup import KEY_FILE, restore_backup

    try:
        manifest = restore_backup(
            backup,
            new_home,
            database_url=database_url or database_url_from_env(),
            record_database_url=database_url is not None,
            key_file=key_file,
        )
    except ChainError as exc:
        fail(str(exc))
    click.echo(
        f"verified and restored {manifest['node']} of chain {manifest['chain_id']} at height"
        f" {manifest['height']} into {new_home}; start it with"
        f" `smartcity node --home {new_home}` (it catches up from its peers)"
    )
    if not (new_home / KEY_FILE).exists():
        click.echo(
            f"note: the backup holds no node key: copy it to {new_home / KEY_FILE} (mode 0600)"
            " or restore again with --key",
            err=True,
        )
