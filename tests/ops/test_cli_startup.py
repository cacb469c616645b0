"""`smartcity --help` answers at once: no help screen loads the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from smartcity.cli import COMMANDS, load_command, main

HEAVY = ("sklearn", "pandas", "sqlalchemy", "fastapi")

# Runs the CLI in a fresh interpreter and reports, on its last stderr line, which heavy
# top-level packages ended up in sys.modules.
PROBE = f"""
import json, sys
from smartcity.cli import main
try:
    main(sys.argv[1:], prog_name="smartcity")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def imported_by(*args: str) -> tuple[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return done.stdout, report["heavy"]


def test_top_level_help_lists_every_command_and_imports_nothing_heavy() -> None:
    out, heavy = imported_by("--help")
    assert heavy == []
    for name in COMMANDS:
        assert f"  {name} " in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_imports_nothing_heavy(name: str) -> None:
    out, heavy = imported_by(name, "--help")
    assert f"Usage: smartcity {name}" in out
    assert heavy == []


GROUPS = [name for name in sorted(COMMANDS) if isinstance(load_command(name), click.Group)]


@pytest.mark.parametrize("name", GROUPS)
def test_subcommand_help_imports_nothing_heavy(name: str) -> None:
    command = load_command(name)
    assert isinstance(command, click.Group)
    for sub in command.list_commands(click.Context(command)):
        _, heavy = imported_by(name, sub, "--help")
        assert heavy == [], f"smartcity {name} {sub} --help imports {heavy}"


def test_python_dash_m_help_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "smartcity", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {name for name in imported if name.split(".")[0] in HEAVY}


def test_listed_help_lines_match_the_commands_own() -> None:
    # What --help lists without importing must be what click lists from the commands themselves
    context = click.Context(main, info_name="smartcity")
    lazy, eager = context.make_formatter(), context.make_formatter()
    main.format_commands(context, lazy)
    click.Group.format_commands(main, context, eager)
    assert lazy.getvalue() == eager.getvalue()


def test_every_listed_command_runs_its_own_help() -> None:
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert load_command(name).name == name
