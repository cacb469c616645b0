"""What the command modules share: the suite folder option and how a command fails.

Below `smartcity.cli`, which imports every command module when its command runs, so that a
command module never imports the root group back.
"""

from __future__ import annotations

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


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: MESSAGE` to stderr and exit with CODE."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def start_process_or_exit(
    data: Path | None, *, demo: bool | None = None, access_log: bool = True
) -> None:
    """Validate the settings and set up logging; a bad setting exits 2 with its message."""
    from smartcity.ops import start_process
    from smartcity.settings import ConfigError

    try:
        start_process(data, demo=demo, access_log=access_log)
    except ConfigError as exc:
        fail(str(exc), 2)
