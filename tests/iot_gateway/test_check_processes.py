"""`smartcity gateway run --check-processes`: the gateway's check workers, or none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import Fleet, build_network
from smartcity.suite import service_database_url

REPO = Path(__file__).resolve().parents[2]


def check_workers(pid: int) -> list[int]:
    """The process's children started by multiprocessing's spawn (its check workers; not the
    resource tracker multiprocessing may start beside them), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in _read_or_gone(task / "children").split():
            if b"spawn_main" in _read_or_gone(Path(f"/proc/{child}/cmdline")).encode():
                found.append(int(child))
    return found


def _read_or_gone(path: Path) -> str:
    """A /proc file's text, or "" when its thread or process ended after it was listed (the
    gateway's MQTT and pool threads come and go while the walk runs)."""
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


@pytest.mark.parametrize("check_processes", [0, 2])
def test_a_gateway_checks_on_as_many_worker_processes_as_asked_and_stores_every_message(
    suite: Any, mqtt_url: str, city: str, tmp_path: Path, gw: Any, check_processes: int
) -> None:
    network = build_network(city=city, n_devices=3, n_segments=2, seed=3)
    suite.register(network)
    outbox, ready = tmp_path / "outbox.db", tmp_path / "ready"
    options = ["--check-processes", str(check_processes)]
    process = gw.spawn(suite, mqtt_url, city, f"sqlite:///{outbox}", ready, extra=options)
    try:
        gw.wait_ready(process, ready)
        assert len(check_workers(process.pid)) == check_processes
        fleet = Fleet(network, seed=4)
        publisher = connect_publisher(mqtt_url, f"pub-{city}")
        engine = create_engine(service_database_url(suite.data, "roadhealth"))

        def stored() -> int:
            with engine.connect() as conn:
                count = conn.execute(text("SELECT count(*) FROM roadhealth_windows")).scalar_one()
            return int(count)

        try:
            assert publish_fleet(publisher, fleet, count=30, rate_per_s=200.0).good == 30
            gw.wait_until(lambda: stored() >= 30, timeout_s=60)
            assert stored() == 30
        finally:
            publisher.loop_stop()
            publisher.disconnect()
            engine.dispose()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_a_wrong_number_of_check_processes_is_refused_with_a_reason(value: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smartcity",
            "gateway",
            "run",
            "--data",
            "x",
            "--roadhealth",
            "y",
            "--check-processes",
            value,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--check-processes" in done.stderr and "Invalid value" in done.stderr
