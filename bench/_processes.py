"""Processes a bench runs as a deployment would: a private Mosquitto, a node, a service.

Each process is timed by its own CPU (user + system from /proc), so a bench can say what a
message costs each part even when the machine is shared.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_node_ports(homes: list[Path]) -> None:
    """Give the nodes ports nothing else holds: on a shared machine another engineer's cluster
    may sit on the suite's fixed ones, and a node that cannot bind exits at once."""
    sockets = [socket.socket() for _ in range(2 * len(homes))]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    p2p = {h.name: ports[len(homes) + i] for i, h in enumerate(homes)}
    for i, home in enumerate(homes):
        path = home / "node.json"
        settings = json.loads(path.read_text())
        settings["port"], settings["p2p_port"] = ports[i], p2p[home.name]
        for peer in settings["peers"]:
            peer["port"] = p2p[peer["name"]]
        path.write_text(json.dumps(settings, indent=2) + "\n")


def cpu_s(pid: int, thread: int | None = None) -> float:
    """CPU seconds (user + system) a process, or one `thread` of it (a native id), has used so
    far (Linux /proc; 0 elsewhere, or for a thread that has ended). /proc/<thread id>/stat
    would count the whole process: a thread's own is under task/."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


@dataclass
class Processes:
    """Child processes with their logs in one folder; stop() ends them all."""

    folder: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        log = (self.folder / f"{name}.log").open("ab")
        child_env = {k: v for k, v in os.environ.items() if k != "SMARTCITY_DATABASE_URL"}
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=log, stderr=log, env={**child_env, **(env or {})}
        )
        self.running[name] = process
        return process.pid

    def python(self, name: str, module: str, args: list[str], **kw: dict[str, str]) -> int:
        return self.spawn(name, [sys.executable, "-m", module, *args], **kw)

    def pid(self, name: str) -> int:
        return self.running[name].pid

    def check_alive(self, name: str) -> bool:
        process = self.running[name]
        if process.poll() is not None:
            tail = (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
        return True

    def stop(self, name: str, timeout_s: float = 20.0) -> None:
        process = self.running.pop(name)
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


def start_private_mosquitto(procs: Processes) -> str | None:
    """A Mosquitto of the bench's own that queues without limit for offline persistent
    sessions (`max_queued_messages 0`), so a backlog can be queued first and drained after;
    None when the mosquitto binary is not installed."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        return None
    port = free_port()
    conf = procs.folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 0\n"
        "max_queued_bytes 0\n"
        "log_type error\n"
        "log_type warning\n"
    )
    procs.spawn("mosquitto", [binary, "-c", str(conf)])

    def listening() -> bool:
        procs.check_alive("mosquitto")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_for(listening, "the private mosquitto", 10)
    return f"mqtt://127.0.0.1:{port}"


def start_node(procs: Processes, suite: Path, name: str = "validator-0") -> str:
    """`smartcity node` for one node of a suite folder, on free ports; returns its API URL."""
    path = suite / "nodes" / name / "node.json"
    config = json.loads(path.read_text())
    config["port"], config["p2p_port"] = free_port(), free_port()
    path.write_text(json.dumps(config))
    procs.python(name, "smartcity", ["node", "--home", str(suite / "nodes" / name)])
    url = f"http://127.0.0.1:{config['port']}"

    def answers() -> bool:
        procs.check_alive(name)
        try:
            return httpx.get(f"{url}/v1/status", timeout=2).status_code < 500  # 401: up
        except httpx.HTTPError:
            return False

    wait_for(answers, f"{name}'s API", 120, 0.2)
    return url


def start_service(
    procs: Processes, suite: Path, service: str, node_url: str, database_url: str
) -> str:
    """`smartcity service NAME` against a node, on a free port; returns its base URL."""
    port = free_port()
    procs.python(
        service,
        "smartcity",
        ["service", service, "--home", str(suite), "--node", node_url, "--port", str(port)],
        env={"SMARTCITY_DATABASE_URL": database_url},
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        procs.check_alive(service)
        try:
            return httpx.get(f"{url}/openapi.json", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(answers, f"the {service} service", 120, 0.2)
    return url
