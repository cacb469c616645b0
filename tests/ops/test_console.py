"""What `smartcity up` prints for a person (stdout) and what it logs (stderr), kept apart."""

from __future__ import annotations

import json
import logging
import socket
import warnings
from collections.abc import Iterator

import pytest

from smartcity.console import announce, log_destination, port_problem
from smartcity.logs import active_format, configure_logging


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    # Every CLI test's `smartcity` leaves warnings captured (configure_logging); capturing again
    # is then a no-op, and the warning went to pytest's per-test recorder, not to the log
    logging.captureWarnings(False)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def test_the_banner_goes_to_stdout_and_its_facts_to_the_json_log(
    json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "INFO")
    assert active_format() == "json"
    announce(["continuing chain c in data/", "  stop        Ctrl-C"], chain_id="c", url="u")
    warnings.warn("a library's complaint", UserWarning, stacklevel=1)
    out, err = capsys.readouterr()
    assert out == "continuing chain c in data/\n  stop        Ctrl-C\n"
    lines = [json.loads(line) for line in err.splitlines()]  # every stderr line is JSON
    assert lines[0]["message"] == "suite serving" and lines[0]["chain_id"] == "c"
    assert lines[1]["level"] == "WARNING" and "a library's complaint" in lines[1]["message"]


def test_the_banner_says_where_the_logs_go_and_how_to_switch() -> None:
    assert log_destination("json") == (
        "JSON lines on stderr (SMARTCITY_LOG_FORMAT=text for plain lines)"
    )
    assert log_destination("text") == (
        "plain lines on stderr (SMARTCITY_LOG_FORMAT=json for JSON lines)"
    )


def test_a_port_in_use_is_named_in_one_sentence() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        said = port_problem("127.0.0.1", port)
    assert said == f"port {port} on 127.0.0.1 is in use; stop it or pass --port"
    assert port_problem("127.0.0.1", port) is None  # free again once closed
