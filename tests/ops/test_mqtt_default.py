"""`smartcity up`'s broker: the documented default address first, an embedded broker otherwise."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartcity import iot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener() -> Iterator[int]:
    """Something answering TCP on a free loopback port, as Mosquitto would on 1883."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_the_default_address_is_used_when_a_broker_answers_there(
    monkeypatch: pytest.MonkeyPatch, listener: int
) -> None:
    monkeypatch.delenv("SMARTCITY_MQTT_URL", raising=False)
    monkeypatch.setattr(iot, "DEFAULT_MQTT_URL", f"mqtt://127.0.0.1:{listener}")
    url, embedded = iot._broker()
    assert url == f"mqtt://127.0.0.1:{listener}" and embedded is None


def test_an_embedded_broker_starts_on_a_free_port_when_nothing_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        silent = closed.getsockname()[1]  # bound, never listening: nothing answers
        monkeypatch.setenv("SMARTCITY_MQTT_URL", f"mqtt://127.0.0.1:{silent}")
        url, embedded = iot._broker()
    try:
        assert embedded is not None and url == embedded.url
        port = int(url.rsplit(":", 1)[1])
        assert port not in (silent, 1883)
    finally:
        if embedded is not None:
            embedded.close()


def test_the_docs_state_the_default_the_code_uses() -> None:
    default = iot.DEFAULT_MQTT_URL
    assert default == "mqtt://127.0.0.1:1883"
    operations = (ROOT / "docs" / "operations.md").read_text()
    lines = operations.splitlines()
    row = next(line for line in lines if line.startswith("| `SMARTCITY_MQTT_URL`"))
    assert f"`{default}`: `smartcity up` uses the broker answering there" in row
    assert "embedded broker on a free loopback port (never 1883)" in row
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"`SMARTCITY_MQTT_URL` \| the MQTT broker \(default `{default}`;", readme)
