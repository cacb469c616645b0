"""Verification over real HTTP as a bank would see it: the suite in a process of its own, the
load from another (wrk when installed, else Python client processes), each timed by its CPU.

A single Python client in the server's own process measures the client as much as the server
(they share one GIL): here the server process serves only, and the load generator's own CPU is
reported beside its rate so a reader can tell which of the two was the limit.

`python -m bench._identity_http serve DATA PORT OUT` is the server: it opens a suite in DATA,
admits city-agency as issuer, issues `CREDENTIALS` distinct credentials of each format and
writes what a client needs (token, URLs, credentials) to OUT, then serves until stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench._processes import REPO, Processes, cpu_s, free_port, start_node, wait_for
from chain.auth import mint_token
from chain.home import SuiteHome
from services.common.ledger import LedgerPort, RemoteLedger
from smartcity.demo import init_suite

CREDENTIALS = 256  # distinct credentials per format, each anchored, the load cycles through
CONNECTIONS = 8
PYTHON_CLIENTS = 4  # client processes when wrk is not installed
IDENTITY_CONTRACT = "services.identity.contract:IdentityContract"


@contextmanager
def identity_server(folder: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The suite served by uvicorn in a child process: (its pid, what a client needs)."""
    out, port = folder / "server.json", free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (folder / "server.log").open("ab")
    argv = [
        sys.executable,
        "-m",
        "bench._identity_http",
        "serve",
        str(folder / "data"),
        str(port),
        str(out),
    ]
    process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                tail = (folder / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the identity server exited:\n{tail}")
            return out.exists()

        wait_for(ready, "the identity server", 300, 0.2)
        yield process.pid, json.loads(out.read_text())
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def measure(
    pid: int | list[int],
    url: str,
    token: str,
    bodies: list[str] | None,
    seconds: float,
    *,
    authenticated: bool = True,
    node_pid: int | None = None,
) -> dict[str, Any]:
    """Requests per second against `url` (POST cycling through `bodies`, else GET), with the
    server's CPU per request (all its processes: `pid` a list) and the load generator's CPU
    share of the same interval (and the chain node's, when it runs apart)."""
    pids = pid if isinstance(pid, list) else [pid]
    headers = {"Authorization": f"Bearer {token}"} if authenticated else {}
    server_before, started = sum(map(cpu_s, pids)), time.perf_counter()
    node_before = cpu_s(node_pid) if node_pid else 0.0
    children_before = _children_cpu_s()
    if shutil.which("wrk"):
        result = _wrk(url, headers, bodies, seconds)
    else:
        result = _python_clients(url, headers, bodies, seconds)
    elapsed = time.perf_counter() - started
    server_cpu = sum(map(cpu_s, pids)) - server_before
    requests = int(result["requests"])
    result.update(
        per_second=round(requests / result.pop("seconds"), 1),
        server_cpu_ms_per_request=round(1000 * server_cpu / max(requests, 1), 3),
        server_cpu_share=round(server_cpu / elapsed, 2),
        generator_cpu_share=round((_children_cpu_s() - children_before) / elapsed, 2),
    )
    if node_pid:
        result["node_cpu_share"] = round((cpu_s(node_pid) - node_before) / elapsed, 2)
    return result


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(
    url: str, headers: dict[str, str], bodies: list[str] | None, seconds: float
) -> dict[str, Any]:
    lines = [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if bodies:
        lines += [
            'wrk.method = "POST"',
            'wrk.headers["Content-Type"] = "application/json"',
            "local bodies = {" + ",".join(f"[==[{b}]==]" for b in bodies) + "}",
            "local i = 0",
            "request = function()",
            "  i = i % #bodies + 1",
            "  return wrk.format(nil, nil, nil, bodies[i])",
            "end",
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        argv = [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        text = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
    if done is None:
        raise RuntimeError(f"wrk printed no result:\n{text}")
    took = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    return {
        "generator": f"wrk -t1 -c{CONNECTIONS}",
        "requests": int(done.group(1)),
        "seconds": took,
        "non_2xx": int(failed.group(1)) if failed else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
        "p50_ms": _latency(text, "50%"),
        "p99_ms": _latency(text, "99%"),
    }


def _latency(text: str, which: str) -> float | None:
    found = re.search(rf"^\s+{which}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if found is None:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return round(float(found.group(1)) * scale, 2)


def _python_clients(
    url: str, headers: dict[str, str], bodies: list[str] | None, seconds: float
) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(PYTHON_CLIENTS) as pool:
        counts = pool.starmap(
            _client_loop, [(url, headers, bodies, seconds, n) for n in range(PYTHON_CLIENTS)]
        )
    return {
        "generator": f"{PYTHON_CLIENTS} Python client processes (wrk not installed)",
        "requests": sum(c[0] for c in counts),
        "seconds": max(c[2] for c in counts),
        "non_2xx": sum(c[1] for c in counts),
    }


def _client_loop(
    url: str, headers: dict[str, str], bodies: list[str] | None, seconds: float, offset: int
) -> tuple[int, int, float]:
    done = failed = 0
    with httpx.Client(headers={**headers, "Content-Type": "application/json"}) as client:
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            if bodies:
                answer = client.post(url, content=bodies[(offset + done) % len(bodies)])
            else:
                answer = client.get(url)
            done += 1
            failed += answer.status_code >= 300
    return done, failed, elapsed


def prepare_issuer(base: str, home: SuiteHome, ledger: LedgerPort) -> dict[str, Any]:
    """Admit city-agency as issuer and issue `CREDENTIALS` credentials of each format through
    the service at `base`: what a client needs (token, URLs, credentials)."""
    from bench.identity_service import CLAIMS, setup_issuer

    key = home.org_key("city-agency")
    token = mint_token(key, org="city-agency", audience="identity", ttl_s=3600)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=300) as http:
        did = setup_issuer(home, ledger, http)
        credentials = {}
        for fmt in ("vc+jwt", "vc+sd-jwt"):
            item = {"type": "ResidenceCredential", "subject": did, "claims": CLAIMS, "format": fmt}
            made = http.post("/credentials/batch", json={"items": [item] * CREDENTIALS})
            made.raise_for_status()
            credentials[fmt] = [c["credential"] for c in made.json()["credentials"]]
    return {"base": base, "token": token, "credentials": credentials, "did": did}


@contextmanager
def identity_workers(folder: Path, workers: int) -> Iterator[tuple[list[int], int, dict[str, Any]]]:
    """A deployment's shape: one chain node, and `smartcity service identity --workers N`
    against it on SQLite, each in processes of their own: (the service's pids, the node's pid,
    what a client needs)."""
    from chain.client import ChainClient, Identity

    suite = folder / "suite"
    init_suite(suite, validators=1, contracts=[("identity", IDENTITY_CONTRACT)])
    procs = Processes(folder)
    try:
        node = start_node(procs, suite)
        port = free_port()
        argv = [
            "service",
            "identity",
            "--home",
            str(suite),
            "--node",
            node,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        db = {"SMARTCITY_DATABASE_URL": f"sqlite:///{folder / 'identity.db'}"}
        procs.python("identity", "smartcity", argv, env=db)
        base = f"http://127.0.0.1:{port}"  # the service alone: its routes at the root

        def answers() -> bool:
            procs.check_alive("identity")
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, "the identity workers", 120, 0.2)
        home = SuiteHome(suite)
        key = home.org_key("city-agency")
        client = ChainClient(node, identity=Identity("city-agency", key))
        facts = prepare_issuer(base, home, RemoteLedger(client, home.genesis()))
        parent = procs.pid("identity")
        pids = [parent, *_children(parent)]  # one worker: the command serves in its own process
        if len(pids) != (1 if workers == 1 else workers + 1):
            raise RuntimeError(f"expected {workers} workers under {parent}, found {pids[1:]}")
        yield pids, procs.pid("validator-0"), facts
    finally:
        procs.stop_all()


def _children(pid: int) -> list[int]:
    """The worker processes uvicorn spawned (not multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in found if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


# -- the server process --------------------------------------------------------------------


def serve(data: Path, port: int, out: Path) -> None:
    """Serve the suite with the identity service on `port`; write the client's facts to `out`."""
    import uvicorn

    from bench.identity_service import ENTRY
    from smartcity.suite import open_suite

    suite = open_suite(data, services=[ENTRY])
    config = uvicorn.Config(
        suite.app, host="127.0.0.1", port=port, log_level="error", access_log=False
    )
    server = uvicorn.Server(config)

    def prepare() -> None:
        wait_for(lambda: server.started, "uvicorn", 120, 0.05)
        ledger = suite.services["identity"].state.env.chain.ledger
        facts = prepare_issuer(f"http://127.0.0.1:{port}/identity", SuiteHome(suite.data), ledger)
        out.with_suffix(".tmp").write_text(json.dumps(facts))
        out.with_suffix(".tmp").rename(out)

    threading.Thread(target=prepare, daemon=True).start()
    server.run()


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 5:
        sys.exit("usage: python -m bench._identity_http serve DATA PORT OUT")
    serve(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
