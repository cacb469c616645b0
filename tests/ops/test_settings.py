"""Configuration from the environment and a settings file: each mistake gets its own message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from smartcity.cli import main
from smartcity.demo import init_suite
from smartcity.settings import DEMO_MARKER, ConfigError, apply_to_environ, load_settings

PG = "postgresql+psycopg://{user}:{password}@db.example:5432/city"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test sees only the SMARTCITY_* variables it sets, and leaves none behind."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.upper().startswith("SMARTCITY_"):
            monkeypatch.delenv(name)
    yield
    os.environ.clear()
    os.environ.update(saved)


def demo_folder(path: Path) -> Path:
    (path / DEMO_MARKER).parent.mkdir(parents=True)
    (path / DEMO_MARKER).write_text("demo\n")
    return path


def test_environment_beats_the_settings_file_and_the_file_beats_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "smartcity.toml").write_text('log_level = "debug"\ncity = "harbour"\n')
    monkeypatch.setenv("SMARTCITY_CITY", "riverside")
    settings = load_settings(tmp_path)
    assert settings.log_level == "DEBUG" and settings.city == "riverside"
    assert settings.log_format is None and settings.database_url is None
    apply_to_environ(settings)
    assert os.environ["SMARTCITY_CITY"] == "riverside"
    assert os.environ["SMARTCITY_LOG_LEVEL"] == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SMARTCITY_LOG_LEVEL", "loud", "SMARTCITY_LOG_LEVEL='LOUD': Input should be 'DEBUG'"),
        ("SMARTCITY_LOG_FORMAT", "xml", "SMARTCITY_LOG_FORMAT='xml': Input should be 'json'"),
        ("SMARTCITY_CITY", "new york", "SMARTCITY_CITY='new york': String should match"),
        ("SMARTCITY_DATABASE_URL", "mysql://a@b/c", "mysql is not supported"),
        ("SMARTCITY_DATABASE_URL", "not a url", "not a database URL"),
        ("SMARTCITY_MQTT_URL", "http://broker", "use mqtt://[user[:password]@]host[:port]"),
        ("SMARTCITY_ROADHEALTH_WEBHOOK", "ftp://x", "SMARTCITY_ROADHEALTH_WEBHOOK='ftp://x'"),
        ("SMARTCITY_SMT", "rust", "SMARTCITY_SMT='rust': Input should be 'c' or 'python'"),
    ],
)
def test_a_bad_variable_is_named_with_its_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        load_settings(None)
    assert message in str(caught.value)


def test_requiring_the_c_tree_where_it_is_not_installed_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chain import smt

    monkeypatch.setenv("SMARTCITY_SMT", "c")
    monkeypatch.setattr(smt, "C_INSTALLED", False)  # as built without a compiler
    with pytest.raises(ConfigError, match="the C tree is not installed") as caught:
        load_settings(None)
    assert "uv sync --reinstall-package smartcity-native" in str(caught.value)


def test_the_tree_named_in_a_settings_file_is_the_one_the_process_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chain.smt reads SMARTCITY_SMT when imported, before a settings file is read: applying
    the settings switches it (the trees are the same either way, only the speed differs)."""
    from chain import smt

    # Wherever the C tree was built or not: what is switched is the implementation's type
    c_tree = smt._c_tree or smt.Tree
    monkeypatch.setattr(smt, "_c_tree", c_tree)
    monkeypatch.setattr(smt, "C_INSTALLED", True)
    monkeypatch.setattr(smt, "_native_tree", smt._native_tree)
    monkeypatch.setattr(smt, "IMPLEMENTATION", smt.IMPLEMENTATION)
    for name in ("python", "c"):
        (tmp_path / "smartcity.toml").write_text(f'smt = "{name}"\n')
        apply_to_environ(load_settings(tmp_path))
        assert name == smt.IMPLEMENTATION
        assert smt._native_tree is (None if name == "python" else c_tree)


def test_settings_file_mistakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "smartcity.toml"
    config.write_text('log_level = "INFO"\ndatabase_ur = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'database_ur' \(known keys: database_url"):
        load_settings(tmp_path)
    config.write_text("city = 'riverside'\nlog_format = \n")
    with pytest.raises(ConfigError, match=r"smartcity.toml: not valid TOML: .*line 2"):
        load_settings(tmp_path)
    config.write_text('city = "two words"\n')
    with pytest.raises(ConfigError, match=r"smartcity.toml: city='two words'"):
        load_settings(tmp_path)
    with pytest.raises(ConfigError, match=r"settings file .*missing\.toml does not exist"):
        load_settings(tmp_path, config=tmp_path / "missing.toml")
    monkeypatch.setenv("SMARTCITY_CONFIG", str(tmp_path / "elsewhere.toml"))
    with pytest.raises(ConfigError, match=r"elsewhere\.toml does not exist"):
        load_settings(tmp_path)


@pytest.mark.parametrize("password", ["postgres", "changeme", "Password", "smartcity"])
def test_a_default_database_password_is_refused_outside_demo_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    url = PG.format(user="smartcity", password=password)
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", url)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    message = str(caught.value)
    assert "refusing to start with a default secret outside demo mode" in message
    assert "SMARTCITY_DATABASE_URL" in message and "smartcity:***@db.example" in message
    assert f":{password}@" not in message
    # the same URL is fine in a demo folder
    assert load_settings(demo_folder(tmp_path)).database_url == url


def test_strong_or_file_held_passwords_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", PG.format(user="city", password="k9$Lq2-vX"))
    assert load_settings(tmp_path).database_url
    secret = tmp_path / "pw"
    secret.write_text("Tr0ub4dor&3-horse\n")
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", PG.format(user="city", password="{password}"))
    monkeypatch.setenv("SMARTCITY_DATABASE_PASSWORD_FILE", str(secret))
    assert load_settings(tmp_path).database_password_file == secret
    secret.write_text("changeme\n")
    with pytest.raises(ConfigError, match=r"PASSWORD_FILE=.*holds a well-known default password"):
        load_settings(tmp_path)
    monkeypatch.setenv("SMARTCITY_DATABASE_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="absent: cannot read it"):
        load_settings(tmp_path)


def test_a_default_mqtt_password_is_refused_outside_demo_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtt://gateway-0:gateway-0@broker:1883")
    with pytest.raises(ConfigError, match=r"SMARTCITY_MQTT_URL uses a well-known default"):
        load_settings(tmp_path)
    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtt://gateway-0:Zq8-long-random@broker:1883")
    assert load_settings(tmp_path).mqtt_url


def run(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, list(args), env=env)


def test_processes_refuse_to_start_with_a_clear_message_and_no_traceback(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    init_suite(suite, validators=1)
    node_home = str(suite / "nodes" / "validator-0")
    result = run("node", "--home", node_home, env={"SMARTCITY_LOG_LEVEL": "chatty"})
    assert result.exit_code == 2
    assert "error: invalid configuration: SMARTCITY_LOG_LEVEL='CHATTY'" in result.output
    assert "Traceback" not in result.output
    weak = PG.format(user="postgres", password="postgres")
    result = run(
        "service",
        "credit",
        "--home",
        str(suite),
        "--node",
        "http://127.0.0.1:9",
        "--port",
        "9",
        env={"SMARTCITY_DATABASE_URL": weak},
    )
    assert result.exit_code == 2
    assert "refusing to start with a default secret outside demo mode" in result.output
    (suite / "smartcity.toml").write_text("colour = 'blue'\n")
    result = run("node", "--home", node_home, env={})
    assert result.exit_code == 2 and "unknown key 'colour'" in result.output
