"""`smartcity gateway run`'s registry bounds: each option reaches GatewaySettings, and a bound
that is not a positive number is refused at the command line with the option's name, exit
status 2 and no traceback."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

import iot_gateway.gateway
from iot_gateway.gateway import GatewaySettings
from smartcity.cli import main
from smartcity.demo import init_suite

RUN = ["gateway", "run", "--data", "x", "--roadhealth", "http://127.0.0.1:9/roadhealth"]


class Built(Exception):
    """Raised by the stand-in gateway with the settings the command built."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings


def built_settings(data: Path, monkeypatch: pytest.MonkeyPatch, *options: str) -> GatewaySettings:
    def gateway(settings: GatewaySettings, **_: object) -> None:
        raise Built(settings)

    monkeypatch.setattr(iot_gateway.gateway, "Gateway", gateway)
    args = ["gateway", "run", "--data", str(data), "--roadhealth", "http://127.0.0.1:9/rh"]
    outcome = CliRunner().invoke(main, [*args, *options])
    assert isinstance(outcome.exception, Built), outcome.output
    return outcome.exception.settings


def test_the_registry_options_reach_the_gateway_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    init_suite(tmp_path / "suite", validators=1)
    given_options = built_settings(
        tmp_path / "suite",
        monkeypatch,
        *("--registry-capacity", "500", "--registry-unknown-capacity", "7"),
        *("--registry-unknown-ttl", "2.5"),
    )
    assert given_options.registry_capacity == 500
    assert given_options.registry_unknown_capacity == 7
    assert given_options.registry_unknown_ttl_s == 2.5
    # Without them, GatewaySettings' own defaults (the CLI spells them so --help stays light)
    defaults = {f.name: f.default for f in fields(GatewaySettings)}
    untouched = built_settings(tmp_path / "suite", monkeypatch)
    for name in ("registry_capacity", "registry_unknown_capacity", "registry_unknown_ttl_s"):
        assert getattr(untouched, name) == defaults[name]


def refused(option: str, value: str) -> str:
    outcome = CliRunner().invoke(main, [*RUN, option, value])
    assert outcome.exit_code == 2, outcome.output
    assert isinstance(outcome.exception, SystemExit)  # click's usage error, not a crash
    assert "Traceback" not in outcome.output
    assert f"Invalid value for '{option}'" in outcome.output
    return outcome.output


def not_an_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return True
    return False


NOT_A_CAPACITY = st.one_of(
    st.integers(max_value=0).map(str),
    st.text(min_size=1, max_size=8).filter(not_an_int),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@settings(max_examples=60, deadline=None)
@given(
    option=st.sampled_from(["--registry-capacity", "--registry-unknown-capacity"]),
    value=NOT_A_CAPACITY,
)
@example(option="--registry-capacity", value="0")
@example(option="--registry-unknown-capacity", value="-1")
@example(option="--registry-capacity", value="lots")
def test_a_capacity_that_is_not_a_positive_integer_is_refused(option: str, value: str) -> None:
    refused(option, value)


def not_a_positive_finite(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return True
    return not (math.isfinite(number) and number > 0)


NOT_A_TTL = st.one_of(
    st.floats(max_value=0.0).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "0", "-0.0", "soon", "1e999"]),
    st.text(min_size=1, max_size=8).filter(not_a_positive_finite),
)


@settings(max_examples=60, deadline=None)
@given(value=NOT_A_TTL)
@example(value="0")
@example(value="-5")
@example(value="nan")
def test_an_unknown_ttl_that_is_not_positive_seconds_is_refused(value: str) -> None:
    refused("--registry-unknown-ttl", value)
