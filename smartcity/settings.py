"""Process configuration: SMARTCITY_* environment variables and a TOML settings file, validated.

Every process of the suite (`smartcity node|service|up`, `smartcity gateway run`)
calls `load_settings` before it opens anything. Precedence: environment > settings file >
defaults. The file is `--config FILE` (or SMARTCITY_CONFIG), else `DATA/smartcity.toml` when it
exists; its keys are the variable names without the prefix, in lower case:

    database_url = "postgresql+psycopg://smartcity:{password}@db:5432/smartcity"
    database_password_file = "/run/secrets/postgres_password"
    log_format = "json"

A bad value stops the process with `ConfigError` naming the variable or key and the value
(never a secret's value). `apply_to_environ` then exports the file's values as SMARTCITY_*
variables, so the parts that read the environment themselves (chain.db, road-health's
runtime, the suite's IoT side) see one configuration.

No default secret outside demo mode: a database or MQTT password that is a well-known default
(`postgres`, `changeme`, the user name, ...) is refused unless the data folder is a demo folder
(`DATA/dashboard/demo-mode`, written by `smartcity up` when it creates the folder).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AnyHttpUrl, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from smartcity.errors import SmartcityError

ENV_PREFIX = "SMARTCITY_"
SETTINGS_FILE = "smartcity.toml"
DEMO_MARKER = Path("dashboard") / "demo-mode"
PASSWORD_PLACEHOLDER = "{password}"  # noqa: S105 (a placeholder, not a password)
# Passwords that ship as examples or defaults somewhere and so are secrets to nobody
DEFAULT_PASSWORDS = frozenset(
    {
        "",
        "postgres",
        "password",
        "passw0rd",
        "changeme",
        "change-me",
        "secret",
        "admin",
        "root",
        "smartcity",
        "mosquitto",
        "example",
        "test",
        "123456",
        "not-a-real-secret",
    }
)


class ConfigError(SmartcityError):
    """The configuration is invalid; the message names the variable or key and the value."""


LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """What a process may be configured with (each also SMARTCITY_<NAME> in the environment)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    database_url: str | None = None
    database_password_file: Path | None = None
    mqtt_url: str | None = None
    mqtt_password_file: Path | None = None
    city: str = Field(default="smartcity", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    roadhealth_webhook: AnyHttpUrl | None = None
    log_format: LogFormat | None = None
    log_level: LogLevel = "INFO"
    # The state tree's implementation (chain.smt): unset takes the C one where it is installed
    smt: Literal["c", "python"] | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                backend = make_url(value).get_backend_name()
            except ArgumentError as exc:
                raise ValueError("not a database URL (e.g. sqlite:///x.db)") from exc
            if backend not in ("sqlite", "postgresql"):
                raise ValueError(f"{backend} is not supported: use sqlite or postgresql")
        return value

    @field_validator("smt")
    @classmethod
    def _smt(cls, value: str | None) -> str | None:
        from chain import smt

        if value == "c" and not smt.C_INSTALLED:
            raise ValueError(
                "the C tree is not installed (no C compiler or OpenSSL headers at install):"
                " install them, then `.tools/bin/uv sync --reinstall-package smartcity-native`"
            )
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^mqtts?://[^/\s]+$", value):
            raise ValueError("use mqtt://[user[:password]@]host[:port]")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def settings_file(data_dir: Path | None, config: Path | None) -> Path | None:
    """The settings file in use: --config / SMARTCITY_CONFIG, else DATA/smartcity.toml if any."""
    named = config or (
        Path(os.environ["SMARTCITY_CONFIG"]) if "SMARTCITY_CONFIG" in os.environ else None
    )
    if named is not None:
        if not named.is_file():
            raise ConfigError(f"settings file {named} does not exist")
        return named
    if data_dir is not None and (data_dir / SETTINGS_FILE).is_file():
        return data_dir / SETTINGS_FILE
    return None


def load_settings(
    data_dir: Path | None = None, *, config: Path | None = None, demo: bool | None = None
) -> Settings:
    """Validated settings for a process using `data_dir`; refuses default secrets unless demo."""
    path = settings_file(data_dir, config)
    if path is not None:
        _check_toml(path)
    cls: type[Settings] = Settings
    if path is not None:
        cls = type(
            "FileSettings",
            (Settings,),
            {"model_config": {**Settings.model_config, "toml_file": path}},
        )
    try:
        settings = cls()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    in_demo = is_demo(data_dir) if demo is None else demo
    check_secrets(settings, demo=in_demo, source=path)
    return settings


def is_demo(data_dir: Path | None) -> bool:
    """Demo mode: the data folder was created by `smartcity up` (docs/dashboard.md)."""
    return data_dir is not None and (data_dir / DEMO_MARKER).is_file()


def apply_to_environ(settings: Settings) -> None:
    """Export values the environment does not set, for the parts that read it directly."""
    for name in (
        "database_url",
        "database_password_file",
        "mqtt_url",
        "city",
        "roadhealth_webhook",
    ):
        value = getattr(settings, name)
        variable = ENV_PREFIX + name.upper()
        if value is not None and variable not in os.environ:
            os.environ[variable] = str(value)
    if settings.smt is not None:  # chain.smt read the environment when it was imported
        from chain import smt

        smt.use_implementation(settings.smt)
    for name in ("log_format", "log_level"):
        value = getattr(settings, name)
        if value is not None:
            os.environ[ENV_PREFIX + name.upper()] = str(value)


# -- validation messages -------------------------------------------------------------------


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the settings file {path}: {exc.strerror}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per bad setting: the variable (or file key), the bad value, what is expected."""
    lines = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        variable = ENV_PREFIX + key.upper()
        if error["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            lines.append(f"{path}: unknown key {key!r} (known keys: {known})")
            continue
        where = variable if _in_environ(variable) or path is None else f"{path}: {key}"
        value = error.get("input")
        shown = "(secret)" if "password" in key else repr(value)
        lines.append(f"{where}={shown}: {error['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def _in_environ(variable: str) -> bool:
    return any(name.upper() == variable for name in os.environ)


def check_secrets(settings: Settings, *, demo: bool, source: Path | None = None) -> None:
    """Refuse a well-known default password outside demo mode."""
    if demo:
        return
    problems = []
    where = f" (or database_url in {source})" if source else ""
    db_password = _url_password(settings.database_url, database=True)
    if db_password is not None and _is_default(db_password, settings.database_url):
        problems.append(
            f"SMARTCITY_DATABASE_URL{where} uses a well-known default password"
            f" ({_masked(settings.database_url)}): put a strong one in a file and name it in"
            " SMARTCITY_DATABASE_PASSWORD_FILE, with {password} in the URL"
        )
    if settings.database_password_file is not None:
        problems.extend(
            _password_file_problems(
                settings.database_password_file, "SMARTCITY_DATABASE_PASSWORD_FILE"
            )
        )
    if settings.mqtt_password_file is not None:
        problems.extend(
            _password_file_problems(settings.mqtt_password_file, "SMARTCITY_MQTT_PASSWORD_FILE")
        )
    mqtt_password = _url_password(settings.mqtt_url, database=False)
    if mqtt_password is not None and _is_default(mqtt_password, settings.mqtt_url):
        problems.append(
            f"SMARTCITY_MQTT_URL uses a well-known default password ({_masked(settings.mqtt_url)})"
        )
    if problems:
        raise ConfigError(
            "refusing to start with a default secret outside demo mode: " + "; ".join(problems)
        )


def _password_file_problems(path: Path, variable: str) -> list[str]:
    try:
        password = path.read_text().strip()
    except OSError as exc:
        return [f"{variable}={path}: cannot read it ({exc.strerror})"]
    if password.lower() in DEFAULT_PASSWORDS:
        return [f"{variable}={path} holds a well-known default password"]
    return []


def _url_password(url: str | None, *, database: bool) -> str | None:
    if not url:
        return None
    if database:
        password = make_url(url).password
        # "{password}" is the placeholder filled from SMARTCITY_DATABASE_PASSWORD_FILE
        placeholder = password == PASSWORD_PLACEHOLDER
        return None if password is None or placeholder else str(password)
    match = re.match(r"^mqtts?://[^:@/]+:([^@/]*)@", url)
    return match.group(1) if match else None


def _is_default(password: str, url: str | None) -> bool:
    user = re.match(r"^[^:]+://([^:@/]+)", url or "")
    return password.lower() in DEFAULT_PASSWORDS or (user is not None and password == user.group(1))


def _masked(url: str | None) -> str:
    return re.sub(r"(://[^:@/]+:)[^@/]*@", r"\1***@", url or "")
