"""Identity service benchmarks: credentials issued and anchored per second (batch anchoring),
status list GETs per second (beside rebuilding the list from the chain, what each GET did
before lists were kept), verifications per second through the library and over HTTP, on the
real embedded chain.

`run()` returns one JSON-able dict per result; the machine's Ed25519 verification ceiling and
the library's own verification rate are measured in the same run, so each HTTP figure comes with
its share of both. Over HTTP the suite runs in a process of its own and the load comes from wrk
(or Python client processes), each timed by its CPU (bench/_identity_http.py). BENCH_SECONDS
(default 1.0) scales durations; BENCH_BATCH (default 1000) sets the issuance batch size;
BENCH_ISSUANCE=0 skips issuance (verification only), BENCH_VERIFICATION=0 verification (issuance
only); BENCH_WORKERS=0 skips the deployment's shape (a node and `smartcity service identity
--workers 1|2` as processes: issuance with 2 workers and 4 batch requests in flight, verification
with 1 and 2).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from jwcrypto import jwk
from sqlalchemy import func, select

from bench._ceiling import ed25519_verifications_per_s
from bench._identity_http import identity_server, identity_workers, measure
from bench._processes import cpu_s
from chain.auth import mint_token
from chain.home import SuiteHome
from services.common.ledger import LedgerPort, call
from services.identity import verification
from services.identity.models import IssuedCredential
from services.identity.schemas import IssueIn
from services.identity.service import issue
from services.identity.service.status import bits_from_chain
from services.identity.status_mirror import ListKey
from smartcity.registry import IDENTITY
from smartcity.suite import Suite, open_suite

ENTRY = IDENTITY
SCHEMA = {
    "type": "object",
    "properties": {
        "givenName": {"type": "string"},
        "familyName": {"type": "string"},
        "birthDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "cityCode": {"type": "integer"},
    },
    "required": ["givenName", "familyName", "birthDate"],
    "additionalProperties": False,
}
CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02", "cityCode": 440300}


class _Server:
    """The suite served by uvicorn on a loopback port, for real HTTP round trips."""

    def __init__(self, suite: Suite) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(suite.app, host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/identity"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def setup_issuer(home: SuiteHome, ledger: LedgerPort, http: httpx.Client) -> str:
    """Type, keys, governance admission and one holder DID; returns the holder's DID."""
    http.post("/types", json={"name": "ResidenceCredential", "schema": SCHEMA}).raise_for_status()
    http.post("/issuers/me/keys", json={}).raise_for_status()
    invoke = {
        "contract": "identity",
        "method": "admit_issuer",
        "args": {"org": "city-agency", "types": ["ResidenceCredential"]},
    }
    proposal = call(
        ledger,
        home.org_key("city-agency"),
        "governance",
        "propose",
        {"action": "invoke", "params": invoke},
    )
    call(
        ledger,
        home.org_key("regulator"),
        "governance",
        "vote",
        {"proposal": proposal["tx"], "approve": True},
    )
    holder = jwk.JWK.generate(kty="OKP", crv="Ed25519").export_public(as_dict=True)
    made = http.post("/dids", json={"keys": [{"publicKeyJwk": holder}]})
    made.raise_for_status()
    return str(made.json()["did"])


def _result(name: str, ops: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "bench": "identity_service",
        "name": name,
        "ops": ops,
        "seconds": round(seconds, 3),
        "per_second": round(ops / seconds, 1),
        **extra,
    }


def _rate(name: str, fn: Callable[[], object], seconds: float, **extra: Any) -> dict[str, Any]:
    fn()
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return _result(name, count, elapsed, **extra)


def _issuance(suite: Suite, http: httpx.Client, did: str, batch: int) -> list[dict[str, Any]]:
    app_state = suite.services["identity"].state
    results = []
    for fmt, alg in (("vc+sd-jwt", "EdDSA"), ("vc+jwt", "ES256")):
        items = [
            IssueIn(type="ResidenceCredential", subject=did, claims=CLAIMS, format=fmt, alg=alg)
            for _ in range(batch)
        ]
        start, thread_cpu = time.perf_counter(), time.thread_time()
        with app_state.sessions() as session, session.begin():
            issued, txs = issue(rt=app_state.env, session=session, org="city-agency", items=items)
        elapsed, thread_cpu = time.perf_counter() - start, time.thread_time() - thread_cpu
        name = f"issue_anchor_library_{fmt}_{alg}"
        # The calling thread's CPU: checks, signing, sealing, the insert (not the node's)
        mine = round(1000 * thread_cpu / len(issued), 4)
        results.append(
            _result(
                name,
                len(issued),
                elapsed,
                batch=batch,
                anchor_txs=len(txs),
                issuing_thread_cpu_ms_per_credential=mine,
            )
        )
    body = {"items": [{"type": "ResidenceCredential", "subject": did, "claims": CLAIMS}] * batch}
    start = time.perf_counter()
    answer = http.post("/credentials/batch", json=body, timeout=300)
    answer.raise_for_status()
    results.append(
        _result(
            "issue_anchor_http_batch_vc+sd-jwt_EdDSA",
            batch,
            time.perf_counter() - start,
            batch=batch,
        )
    )
    singles, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        one = {"type": "ResidenceCredential", "subject": did, "claims": CLAIMS}
        http.post("/credentials", json=one).raise_for_status()
        singles += 1
    elapsed = time.perf_counter() - start
    note = "one request, one anchor tx, waits for its block"
    results.append(_result("issue_anchor_http_single_request", singles, elapsed, note=note))
    return results


def _status_list(suite: Suite, http: httpx.Client, seconds: float) -> list[dict[str, Any]]:
    """GET of city-agency's list 0 (every credential issued above, a few revoked) over HTTP,
    beside what each GET cost before it was kept: a chain read per credential, then encoding."""
    app_state = suite.services["identity"].state
    key = ListKey("city-agency", 0, "revocation")
    with app_state.sessions() as session:
        ids = session.scalars(
            select(IssuedCredential.id).where(IssuedCredential.org == key.org).limit(5)
        ).all()
        held = session.scalar(
            select(func.count()).where(
                IssuedCredential.org == key.org, IssuedCredential.list_no == key.list_no
            )
        )
    for credential in ids:
        http.post(f"/credentials/{credential}/revoke", json={}).raise_for_status()
    path = f"/status-lists/{key.org}/{key.list_no}/{key.purpose}"
    start = time.perf_counter()
    http.get(path).raise_for_status()  # builds the list from the chain, then keeps it
    first_s = time.perf_counter() - start

    def rebuild() -> object:
        with app_state.sessions() as session:
            built = bits_from_chain(rt=app_state.env, session=session, key=key)
        return built.bits.encode()

    return [
        _rate(
            "status_list_get_http",
            lambda: http.get(path).raise_for_status(),
            seconds,
            credentials_in_list=held,
            first_get_s=round(first_s, 4),
        ),
        _rate("status_list_rebuild_from_chain_library", rebuild, seconds, credentials_in_list=held),
    ]


def _verification(
    suite: Suite, http: httpx.Client, did: str, seconds: float, ceiling: float
) -> list[dict[str, Any]]:
    """Verifications per second of one vc+jwt (the bank's case) and one vc+sd-jwt in the
    library, without and with the 6 state proofs, each with its share of the Ed25519 ceiling."""
    app_state = suite.services["identity"].state
    tokens = {
        fmt: http.post(
            "/credentials",
            json={"type": "ResidenceCredential", "subject": did, "claims": CLAIMS, "format": fmt},
        ).json()["credential"]
        for fmt in ("vc+jwt", "vc+sd-jwt")
    }

    def library(token: str, proofs: bool) -> Callable[[], object]:
        def once() -> object:
            with app_state.sessions() as session:
                report = verification.verify_credential(
                    rt=app_state.env, session=session, token=token, include_proofs=proofs
                )
            assert report.verified
            return report

        return once

    results = []
    for fmt, token in tokens.items():
        name = fmt.replace("+", "_").replace("-", "_")
        for proofs in (False, True):
            suffix = "with_state_proofs" if proofs else "no_proofs"
            extra = {"proofs": 6} if proofs else {}
            result = _rate(
                f"verify_library_{name}_{suffix}", library(token, proofs), seconds, **extra
            )
            result["share_of_ed25519_ceiling"] = round(result["per_second"] / ceiling, 4)
            results.append(result)
    return results


def _verification_http(
    seconds: float, ceiling: float, library: dict[str, float]
) -> list[dict[str, Any]]:
    """The same verifications over HTTP (distinct credentials in turn, several connections),
    beside the cheapest answers of the same server: /healthz, a 401, an authenticated GET."""
    duration = max(2.0, 2 * seconds)
    results = []
    with tempfile.TemporaryDirectory() as tmp, identity_server(Path(tmp)) as (pid, facts):
        base, token = facts["base"], facts["token"]
        root = base.removesuffix("/identity")
        floors = (
            ("http_floor_healthz", f"{root}/healthz", False),
            ("http_floor_unauthenticated_401", f"{base}/types/ResidenceCredential", False),
            ("http_floor_get_type", f"{base}/types/ResidenceCredential", True),
        )
        for name, url, authenticated in floors:
            measured = measure(pid, url, token, None, duration, authenticated=authenticated)
            results.append({"bench": "identity_service", "name": name, **measured})
        for fmt, credentials in facts["credentials"].items():
            label = fmt.replace("+", "_").replace("-", "_")
            for proofs in (False, True):
                suffix = "with_state_proofs" if proofs else "no_proofs"
                bodies = [
                    json.dumps({"credential": c, "include_proofs": proofs}) for c in credentials
                ]
                measured = measure(pid, f"{base}/credentials/verify", token, bodies, duration)
                name = f"verify_http_{label}_{suffix}"
                own = library.get(f"verify_library_{label}_{suffix}")
                results.append(
                    {
                        "bench": "identity_service",
                        "name": name,
                        **measured,
                        "distinct_credentials": len(credentials),
                        **({"proofs": 6} if proofs else {}),
                        "share_of_ed25519_ceiling": round(measured["per_second"] / ceiling, 4),
                        "library_per_second": own,
                        "share_of_library": round(measured["per_second"] / own, 3) if own else None,
                    }
                )
    return results


def _warm_up(pids: list[int], url: str, token: str, bodies: list[str]) -> float:
    """Load until the server's CPU per request stops falling (2 s passes, at most 30 s): each
    worker keeps 3 state reads per credential until a block with transactions (none come
    here), and until it holds them a verification waits on the node. Returns the seconds."""
    spent, best = 0.0, float("inf")
    while spent < 30.0:
        cost = measure(pids, url, token, bodies, 2.0)["server_cpu_ms_per_request"]
        spent += 2.0
        if cost > 0.9 * best:
            break
        best = min(best, cost)
    return spent


def _verification_workers(seconds: float, ceiling: float) -> list[dict[str, Any]]:
    """vc+jwt verified over HTTP as deployed: a chain node and `smartcity service identity
    --workers N` (N = 1, 2) in processes of their own on SQLite, after a warm-up (each worker's
    reads kept until the next block with transactions). CPU is reported for the
    workers, the node and wrk, which share the machine's cores."""
    duration = max(2.0, 2 * seconds)
    results = []
    for workers in (1, 2):
        with (
            tempfile.TemporaryDirectory() as tmp,
            identity_workers(Path(tmp), workers) as (
                pids,
                node,
                facts,
            ),
        ):
            url = f"{facts['base']}/credentials/verify"
            for proofs in (False, True):
                bodies = [
                    json.dumps({"credential": c, "include_proofs": proofs})
                    for c in facts["credentials"]["vc+jwt"]
                ]
                warm_up_s = _warm_up(pids, url, facts["token"], bodies)
                measured = measure(pids, url, facts["token"], bodies, duration, node_pid=node)
                suffix = "with_state_proofs" if proofs else "no_proofs"
                results.append(
                    {
                        "bench": "identity_service",
                        "name": f"verify_http_workers_vc_jwt_{suffix}",
                        "workers": workers,
                        **measured,
                        **({"proofs": 6} if proofs else {}),
                        "warm_up_s": warm_up_s,
                        "share_of_ed25519_ceiling": round(measured["per_second"] / ceiling, 4),
                    }
                )
    return results


# Batch requests in flight at once (BENCH_IN_FLIGHT): signing overlaps the anchors' blocks
ISSUING_CLIENTS = int(os.environ.get("BENCH_IN_FLIGHT", "4"))


def _issuance_workers(batch: int, seconds: float) -> list[dict[str, Any]]:
    """Issue-and-anchor over HTTP as deployed: a chain node and `smartcity service identity
    --workers 2` in processes of their own on SQLite, ISSUING_CLIENTS batch requests of
    `batch` in flight at once (one organisation: distinct status entries, no 409), with the
    CPU per credential of the workers, the node and the client threads of this process."""
    duration = max(4.0, 4 * seconds)
    with (
        tempfile.TemporaryDirectory() as tmp,
        identity_workers(Path(tmp), 2) as (pids, node, facts),
    ):
        item = {"type": "ResidenceCredential", "subject": facts["did"], "claims": CLAIMS}
        body = json.dumps({"items": [item] * batch})
        headers = {"Authorization": f"Bearer {facts['token']}", "Content-Type": "application/json"}
        url = f"{facts['base']}/credentials/batch"
        issued, refused = [0] * ISSUING_CLIENTS, [0] * ISSUING_CLIENTS

        def client(number: int, until: float) -> None:
            with httpx.Client(headers=headers, timeout=300) as http:
                while time.perf_counter() < until:
                    answer = http.post(url, content=body)
                    if answer.status_code == 201:
                        issued[number] += len(answer.json()["credentials"])
                    else:
                        refused[number] += 1

        def load(until: float) -> None:
            threads = [
                threading.Thread(target=client, args=(n, until)) for n in range(ISSUING_CLIENTS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        load(time.perf_counter() + 1.0)  # warm-up: each worker's keys, schema, first list
        issued[:], refused[:] = [0] * ISSUING_CLIENTS, [0] * ISSUING_CLIENTS
        server0, node0, own0 = sum(map(cpu_s, pids)), cpu_s(node), time.process_time()
        start = time.perf_counter()
        load(start + duration)
        elapsed = time.perf_counter() - start
        count = max(sum(issued), 1)
        server_ms = 1000 * (sum(map(cpu_s, pids)) - server0) / count
        node_ms = 1000 * (cpu_s(node) - node0) / count
        return [
            _result(
                "issue_anchor_http_workers_batch_vc+sd-jwt_EdDSA",
                sum(issued),
                elapsed,
                workers=2,
                batch=batch,
                requests_in_flight=ISSUING_CLIENTS,
                refused_requests=sum(refused),
                server_cpu_ms_per_credential=round(server_ms, 4),
                # Cores the scheduler gave: rate = share / CPU a credential
                server_cpu_share=round(server_ms * count / 1000 / elapsed, 2),
                node_cpu_share=round(node_ms * count / 1000 / elapsed, 2),
                node_cpu_ms_per_credential=round(node_ms, 4),
                client_cpu_ms_per_credential=round(1000 * (time.process_time() - own0) / count, 4),
                # What the machine's 2 cores would give with nothing else running on them
                two_idle_cores_per_second=round(2000 / (server_ms + node_ms), 1),
                load_average=round(os.getloadavg()[0], 2),
            )
        ]


def run() -> list[dict[str, Any]]:
    seconds = float(os.environ.get("BENCH_SECONDS", "1.0"))
    batch = int(os.environ.get("BENCH_BATCH", "1000"))
    verifying = os.environ.get("BENCH_VERIFICATION", "1") != "0"
    ceiling = ed25519_verifications_per_s(seconds)
    results: list[dict[str, Any]] = [
        {
            "bench": "identity_service",
            "name": "ceiling_ed25519_verify",
            "per_second": round(ceiling, 1),
        }
    ]
    with tempfile.TemporaryDirectory() as tmp:
        suite = open_suite(Path(tmp) / "data", services=[ENTRY])
        suite.node.start()
        try:
            with _Server(suite) as base:
                key = SuiteHome(suite.data).org_key("city-agency")
                token = mint_token(key, org="city-agency", audience="identity", ttl_s=3600)
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                    ledger = suite.services["identity"].state.env.chain.ledger
                    did = setup_issuer(SuiteHome(suite.data), ledger, http)
                    if os.environ.get("BENCH_ISSUANCE", "1") != "0":
                        results += _issuance(suite, http, did, batch)
                        results += _status_list(suite, http, seconds)
                    if verifying:
                        results += _verification(suite, http, did, seconds, ceiling)
        finally:
            suite.node.stop()
    if os.environ.get("BENCH_ISSUANCE", "1") != "0" and os.environ.get("BENCH_WORKERS", "1") != "0":
        library = next(r for r in results if r["name"] == "issue_anchor_library_vc+sd-jwt_EdDSA")
        for result in _issuance_workers(batch, seconds):
            share = result["per_second"] / library["per_second"]
            results.append(
                {
                    **result,
                    "library_per_second": library["per_second"],
                    "share_of_library": round(share, 3),
                }
            )
    if not verifying:
        return results
    library = {r["name"]: r["per_second"] for r in results if "per_second" in r}
    results += _verification_http(seconds, ceiling, library)
    if os.environ.get("BENCH_WORKERS", "1") != "0":
        results += _verification_workers(seconds, ceiling)
    return results


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
