"""`smartcity drop-schemas`: a suite's schemas on a shared PostgreSQL go when its operator says,
never while it runs, and nothing else's does."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from smartcity.cli import main
from smartcity.suite import drop_tagged_schemas, open_suite, suite_schemas, suite_tag


def drop(data: Path, *extra: str, answer: str | None = None) -> tuple[int, str]:
    saved = dict(os.environ)  # the command exports its settings, as a process would
    try:
        outcome = CliRunner().invoke(
            main, ["drop-schemas", "--data", str(data), *extra], input=answer
        )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return outcome.exit_code, outcome.output


def test_a_suites_schemas_are_dropped_once_it_has_stopped(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", db_url)
    data, other = tmp_path / "data", tmp_path / "other"
    suite = open_suite(data, validators=2, observers=1, services=[])
    with TestClient(open_suite(other, validators=1, observers=0, services=[]).app):
        pass  # a second suite on the same server, whose schemas must stay
    if not db_url.startswith("postgresql"):
        code, said = drop(data, "--yes")
        assert code == 2, said
        assert "not on PostgreSQL" in said and f"files in {data}" in said
        return
    names = ["observer-0", "validator-0", "validator-1"]
    theirs = suite_schemas(other, db_url)
    assert suite_schemas(data, db_url) == [
        f"chain_{suite_tag(data)}_{n.replace('-', '_')}" for n in names
    ]
    with TestClient(suite.app):
        code, said = drop(data, "--yes")
        assert code == 1, said
        assert "is running (observer-0, validator-0, validator-1): stop it first" in said
    code, said = drop(data, answer="n\n")  # asked, and declined
    assert code == 1 and "Aborted" in said, said
    assert len(suite_schemas(data, db_url)) == 3
    code, said = drop(data, answer="y\n")
    assert code == 0, said
    assert "dropped 3 schemas" in said
    assert suite_schemas(data, db_url) == []
    assert suite_schemas(other, db_url) == theirs  # another suite's are left alone
    assert drop(data, "--yes") == (0, f"no schemas of the suite in {data} on this server\n")
    # The other suite's folder is gone: --list finds it, --tag drops it
    tag = suite_tag(other)
    shutil.rmtree(other)
    code, listed = drop(tmp_path / "gone", "--list")
    assert code == 0, listed
    assert f"{tag}  1 schemas: chain_{tag}_validator_0" in listed.splitlines()
    code, said = drop(tmp_path / "gone", "--tag", tag, "--yes")
    assert code == 0 and said.endswith("dropped 1 schemas\n"), said
    assert f"{tag}  " not in drop(tmp_path / "gone", "--list")[1]
    assert drop(tmp_path / "gone", "--tag", tag) == (
        0,
        f"no schemas of the suite {tag} on this server\n",
    )


def test_a_folder_without_a_suite_is_refused(tmp_path: Path) -> None:
    code, said = drop(tmp_path)
    assert code == 2
    assert "holds no suite (no genesis.json)" in said


@pytest.mark.parametrize("tag", ["", "0a1b", "0A1B2C3D4E5F", "0a1b2c3d4e5g", "0a1b2c3d4e5f0"])
def test_a_tag_that_is_not_twelve_hex_digits_is_refused(tmp_path: Path, tag: str) -> None:
    code, said = drop(tmp_path, "--tag", tag)
    assert code == 2
    assert f"{tag!r} is not a suite's tag: 12 lowercase hex digits" in said


@pytest.mark.parametrize("tag", ["", "%", "0a_", "0A1B2C3D4E5F", "0a1b2c3d4e5", "abc'; drop"])
def test_only_a_tag_drops_schemas(tag: str) -> None:
    """Anything but 12 lowercase hex digits is refused before the server is asked."""
    with pytest.raises(ValueError, match="12 lowercase hex digits"):
        drop_tagged_schemas(tag, "postgresql+psycopg://nobody@127.0.0.1:1/none")
