"""The compose topology as separate processes on loopback (there is no Docker engine here).

A suite folder (made by `smartcity init` or `init_suite`) gets free ports, then its validators,
observer, services and gateway run as their own `python -m ...` processes, each with a database
of its own: a fresh PostgreSQL schema when SMARTCITY_DATABASE_URL points at one, else a SQLite
file. Waits poll with a deadline and, on failure, say what they saw last and show the log tail
of any process that died, so a broken run names its cause.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from chain.auth import mint_token
from chain.client import ChainClient, Identity
from chain.errors import ClientError
from chain.genesis import Genesis
from chain.home import SuiteHome

from ..conftest import free_port, fresh_database_url

LOG_TAIL_CHARS = 3000
POLL_S = 0.25


def backend_from_env() -> str:
    """PostgreSQL when the environment names one (as .ci/run does), SQLite otherwise."""
    url = os.environ.get("SMARTCITY_DATABASE_URL", "")
    return "postgresql" if url.startswith("postgresql") else "sqlite"


class Topology:
    """A suite folder's nodes, services and gateway as processes, with their ports and logs."""

    def __init__(self, root: Path, suite: Path, backend: str) -> None:
        self.root = root
        self.suite = suite
        self.home = SuiteHome(suite)
        self.genesis: Genesis = self.home.genesis()
        self.backend = backend
        self.nodes = sorted(p.name for p in (suite / "nodes").iterdir())
        self.api: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()
        self.drops: list[Callable[[], None]] = []
        self.gateway_ready = root / "gateway.ready"  # the gateway writes its health URL here
        self._assign_ports()

    def _assign_ports(self) -> None:
        """Free loopback ports instead of init's fixed ones, so parallel runs never collide."""
        p2p = {name: free_port() for name in self.nodes}
        for name in self.nodes:
            self.api[name] = free_port()
            path = self.suite / "nodes" / name / "node.json"
            config = json.loads(path.read_text())
            config["port"], config["p2p_port"] = self.api[name], p2p[name]
            for peer in config["peers"]:
                peer["port"] = p2p[peer["name"]]
            path.write_text(json.dumps(config))

    # -- processes -------------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.api[name]}"

    def spawn(
        self,
        name: str,
        args: list[str],
        *,
        module: str = "smartcity",
        env: dict[str, str] | None = None,
    ) -> None:
        """Run `python -m MODULE ARGS` with a database of its own; output goes to NAME.log."""
        database, drop = fresh_database_url(self.backend, self.root)
        self.drops.append(drop)
        log = (self.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=log,
            env={**os.environ, "SMARTCITY_DATABASE_URL": database, **(env or {})},
        )

    def start_nodes(self) -> None:
        """Every validator and observer; returns once each one's API answers."""
        for name in self.nodes:
            self.spawn(name, ["node", "--home", str(self.suite / "nodes" / name)])
        for name in self.nodes:
            # Generous: a live process on a loaded host may take a minute to import and bind
            self.wait(partial(self.status, name), f"{name}'s API to answer", timeout_s=120)

    def start_service(self, service: str, node: str, *, env: dict[str, str] | None = None) -> None:
        """`smartcity service NAME` against one node, on a port of its own."""
        self.api[service] = free_port()
        args = ["service", service, "--home", str(self.suite), "--node", self.url(node)]
        self.spawn(service, [*args, "--port", str(self.api[service])], env=env)

    def start_gateway(self, *, node: str, broker_url: str, city: str, tag: str) -> Path:
        """`smartcity gateway run` for CITY's telemetry; returns its ready file."""
        ready = self.gateway_ready
        outbox, drop = fresh_database_url(self.backend, self.root)
        self.drops.append(drop)
        args = [
            "gateway",
            "run",
            "--data",
            str(self.suite),
            "--broker",
            broker_url,
            "--roadhealth",
            self.url("roadhealth"),
            "--chain",
            self.url(node),
            "--outbox",
            outbox,
            "--instance",
            f"gw-{tag}",
            "--group",
            f"gw-{tag}",
            "--topic",
            f"city/{city}/road/+/sensor/+/telemetry/#",  # JSON and CBOR
            "--session-expiry",
            "300",
            "--batch-wait",
            "0.1",
            "--ready-file",
            str(ready),
        ]
        self.spawn("gateway", args)
        return ready

    def kill(self, name: str) -> int:
        """SIGKILL a process (no chance to clean up) and return its exit code."""
        proc = self.procs[name]
        self.killed.add(name)
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for drop in self.drops:
            drop()

    def log_tail(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:] if path.exists() else ""

    def dead(self) -> list[str]:
        """Processes that exited without being killed on purpose."""
        return [n for n, p in self.procs.items() if p.poll() is not None and n not in self.killed]

    # -- the chain and the services as their users reach them ----------------------------

    def client(self, name: str, org: str = "regulator") -> ChainClient:
        return ChainClient(self.url(name), identity=Identity(org, self.home.org_key(org)))

    def status(self, name: str) -> dict[str, Any]:
        with self.client(name) as client:
            return client.status()

    def height(self, name: str) -> int:
        return int(self.status(name)["height"])

    def headers(self, org: str, audience: str) -> dict[str, str]:
        token = mint_token(self.home.org_key(org), org=org, audience=audience)
        return {"authorization": f"Bearer {token}"}

    def call(
        self, method: str, service: str, path: str, org: str | None, **kw: Any
    ) -> httpx.Response:
        """A request to a service as ORG (a bearer token signed by its key), or anonymous."""
        headers = self.headers(org, service) if org else {}
        return httpx.request(
            method, f"{self.url(service)}{path}", headers=headers, timeout=60, **kw
        )

    def get(self, service: str, path: str, org: str, **kw: Any) -> httpx.Response:
        return self.call("GET", service, path, org, **kw)

    def post(self, service: str, path: str, org: str, **kw: Any) -> httpx.Response:
        return self.call("POST", service, path, org, **kw)

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
        """Poll CONDITION until truthy and return its value; on timeout say what was seen."""
        deadline = time.monotonic() + timeout_s
        seen: Any = None
        while True:
            try:
                seen = condition()
                if seen:
                    return seen
            except (ClientError, httpx.HTTPError) as exc:
                seen = f"{type(exc).__name__}: {exc}"
            dead = self.dead()
            if dead or time.monotonic() > deadline:
                logs = "".join(
                    f"\n--- {n}.log (exit {self.procs[n].returncode}) ---\n{self.log_tail(n)}"
                    for n in dead
                )
                reason = f"{', '.join(dead)} died" if dead else f"timed out after {timeout_s}s"
                raise AssertionError(f"{reason} waiting for {what}; last seen: {seen!r}{logs}")
            time.sleep(POLL_S)
