"""The distributed deployment file validates, and its database secret is read from a file."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from chain.db import database_url_from_env
from chain.errors import StorageError

ROOT = Path(__file__).resolve().parents[2]
ROLES = {
    "init",
    "validator-0",
    "validator-1",
    "validator-2",
    "validator-3",
    "observer-0",
    "identity",
    "credit",
    "roadhealth",
    "gateway-0",
    "gateway-1",
    "mosquitto",
    "postgres",
}
MQTT_CLIENTS = ("gateway-0", "gateway-1", "roadhealth")


def test_compose_file_validates(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    docker = shutil.which("docker")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "postgres_password").write_text("not-a-real-secret\n")
    (tmp_path / "secrets" / "mosquitto_passwd").write_text("")
    for client in MQTT_CLIENTS:
        (tmp_path / "secrets" / f"mqtt_{client.replace('-', '_')}").write_text("not-a-secret\n")
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    if compose:
        command = [compose, "-f", str(tmp_path / "compose.yaml"), "config", "-q"]
    elif (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        command = [docker, "compose", "-f", str(tmp_path / "compose.yaml"), "config", "-q"]
    else:
        import yaml  # a YAML check is the least we can do without a compose tool

        document = yaml.safe_load((ROOT / "compose.yaml").read_text())
        assert set(document["services"]) >= ROLES
        return
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(
        [*command[:-2], "config", "--services"], capture_output=True, text=True, cwd=tmp_path
    )
    assert set(listed.stdout.split()) >= ROLES


def test_the_image_copies_each_local_package_before_installing_it() -> None:
    """The image's `uv sync` builds the project's path sources (native/: the state tree in C):
    each must be copied in before the first sync (without it the build stopped there), and the
    build stage has the compiler and headers the extension needs, so the image runs the C tree."""
    sources = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["sources"]
    paths = {source["path"] for source in sources.values() if "path" in source}
    assert "native" in paths
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    first_sync = next(i for i, line in enumerate(lines) if "uv sync" in line)
    copied = {line.split()[1] for line in lines[:first_sync] if line.startswith("COPY ")}
    assert paths <= copied
    build_stage = "\n".join(lines[:first_sync])
    assert "gcc" in build_stage and "libssl-dev" in build_stage
    assert "IMPLEMENTATION == 'c'" in "\n".join(lines)


def test_compose_file_holds_no_secret() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert "PASSWORD:" not in text.replace("PASSWORD_FILE:", "")
    assert "secrets/postgres_password" in text and "secrets/mosquitto_passwd" in text
    assert "allow_anonymous false" in (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()


def test_database_password_comes_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("p@ss/word\n")
    monkeypatch.setenv("SMARTCITY_DATABASE_URL", "postgresql+psycopg://u:{password}@db:5432/x")
    monkeypatch.setenv("SMARTCITY_DATABASE_PASSWORD_FILE", str(secret))
    assert database_url_from_env() == "postgresql+psycopg://u:p%40ss%2Fword@db:5432/x"
    monkeypatch.delenv("SMARTCITY_DATABASE_PASSWORD_FILE")
    with pytest.raises(StorageError, match="PASSWORD_FILE"):
        database_url_from_env()


def test_every_mqtt_client_in_compose_logs_in_with_its_own_password_file() -> None:
    import yaml

    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    for client in MQTT_CLIENTS:
        service = services[client]
        urls = [a.split("=", 1)[1] for a in service.get("command", []) if a.startswith("--broker=")]
        urls += [service["environment"].get("SMARTCITY_MQTT_URL", "")]
        url = next(u for u in urls if u)
        # Verify the URL names the ACL user and takes its password from a compose secret
        assert url.startswith(f"mqtt://{client}:{{password}}@mosquitto:"), url
        assert f"user {client}" in acl
        secret = f"mqtt_{client.replace('-', '_')}"
        assert service["environment"]["SMARTCITY_MQTT_PASSWORD_FILE"] == f"/run/secrets/{secret}"
        assert secret in service["secrets"]


def test_broker_password_comes_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iot_gateway.errors import ConfigError
    from iot_gateway.source import BrokerAddress
    from services.common.mqtt import mqtt_url_from_env

    secret = tmp_path / "pw"
    secret.write_text("s3cr@t\n")
    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtt://roadhealth:{password}@broker:1883")
    monkeypatch.setenv("SMARTCITY_MQTT_PASSWORD_FILE", str(secret))
    assert mqtt_url_from_env() == "mqtt://roadhealth:s3cr%40t@broker:1883"
    address = BrokerAddress.parse("mqtt://gateway-0:{password}@broker:1883")
    assert (address.username, address.password) == ("gateway-0", "s3cr@t")
    monkeypatch.setenv("SMARTCITY_MQTT_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot read the password file"):
        BrokerAddress.parse("mqtt://gateway-0:{password}@broker:1883")
    monkeypatch.delenv("SMARTCITY_MQTT_PASSWORD_FILE")
    with pytest.raises(ConfigError, match="SMARTCITY_MQTT_PASSWORD_FILE"):
        BrokerAddress.parse("mqtt://gateway-0:{password}@broker:1883")
