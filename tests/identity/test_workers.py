"""Two workers of the identity service (`smartcity service identity --workers 2`): each its own
app on a remote node, keeping chain reads until the next block, sharing only the database and
the chain. A nonce spent through one is spent for the other, and a revocation through one is
what the other reports, in its verifications and at once in its status lists."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.identity.test_replay import accepted, challenge, issue, refused, shown


class Worker:
    """One worker as a client reaches it: the identity app on a RemoteLedger, over HTTP."""

    def __init__(self, client: Any, home: Any, ledger: Any) -> None:
        self.client, self.home, self.ledger = client, home, ledger
        self.node_reads = 0  # state reads and proofs asked of the node
        for name in ("read", "state_proof"):
            setattr(ledger, name, self._counted(getattr(ledger, name)))

    def _counted(self, read: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.node_reads += 1
            return read(*args)

        return counted

    def call(self, org: str, method: str, path: str, **kw: Any) -> Any:
        from chain.auth import mint_token

        token = mint_token(self.home.org_key(org), org=org, audience="identity")
        return self.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)


@pytest.fixture
def workers(issuer: Any, db_url: str, live_server: Callable[[Any], Any]) -> Iterator[list[Worker]]:
    from fastapi.testclient import TestClient

    from chain.api import create_app as node_api
    from chain.client import ChainClient, Identity
    from services.common.context import ServiceContext
    from services.common.ledger import RemoteLedger
    from services.identity.app import create_app
    from smartcity.suite import OPERATOR_ORG

    home, key = issuer.home, issuer.home.org_key(OPERATOR_ORG)
    with ExitStack() as stack:
        node = stack.enter_context(live_server(node_api(issuer.suite.node)))
        found = []
        for _ in range(2):
            client = stack.enter_context(
                ChainClient(node.url, identity=Identity(OPERATOR_ORG, key))
            )
            ctx = ServiceContext(
                name="identity",
                ledger=RemoteLedger(client, home.genesis()),
                database_url=db_url,
                data_dir=issuer.suite.data,
                operator_org=OPERATOR_ORG,
                operator_key=key,
            )
            app = stack.enter_context(TestClient(create_app(ctx)))
            found.append(Worker(app, home, ctx.ledger))
        yield found


def test_two_workers_share_spent_nonces_revocations_and_revoked_keys(
    workers: list[Worker], holder: Any, issuer: Any
) -> None:
    one, two = workers
    token = issue(one, holder.did)["credential"]
    ch = challenge(one, "bank-a")
    body = {"presentation": shown(holder, token, ch), "nonce": ch["nonce"]}

    # A nonce spent through one worker is spent for the other
    accepted(two.call("bank-a", "POST", "/presentations/verify", json=body))
    for worker in (one, two):
        again = worker.call("bank-a", "POST", "/presentations/verify", json=body)
        refused(again, 409, "replayed", "already used")

    # The other worker has read (and kept) a credential's state as valid
    issued = issue(one, holder.did, format="vc+jwt")
    body = {"credential": issued["credential"], "include_proofs": False}
    first = two.call("bank-a", "POST", "/credentials/verify", json=body)
    assert first.status_code == 200 and first.json()["verified"] is True, first.text
    # Verified again, with and without proofs: from what it kept, no read of the node
    proven = {**body, "include_proofs": True}
    assert two.call("bank-a", "POST", "/credentials/verify", json=proven).status_code == 200
    reads = two.node_reads
    for again in (body, proven):
        answer = two.call("bank-a", "POST", "/credentials/verify", json=again)
        assert answer.status_code == 200 and answer.json()["verified"] is True, answer.text
    assert two.node_reads == reads

    # A revocation through one is reported by the other once it hears of the block from the
    # node's event stream: within milliseconds, 5 s at most here (a loaded CI machine)
    revoked = one.call("city-agency", "POST", f"/credentials/{issued['id']}/revoke", json={})
    assert revoked.status_code == 200, revoked.text
    deadline = time.monotonic() + 5.0
    while (answer := two.call("bank-a", "POST", "/credentials/verify", json=body)).json()[
        "verified"
    ] and time.monotonic() < deadline:
        time.sleep(0.01)
    status = answer.json()["checks"]["status"]
    assert answer.status_code == 200 and answer.json()["verified"] is False, answer.text
    assert status["status"] == "failed" and "revoked" in status["message"]

    # A bearer key the chain revokes stops working at each worker with its block
    _a_bearer_key_revoked_on_the_chain_stops_working_at_each_worker_with_its_block(workers, issuer)


def test_a_status_change_through_one_worker_is_in_the_others_status_list_at_once(
    workers: list[Worker], holder: Any, issuer: Any
) -> None:
    from tests.identity.test_status_list import (
        assert_lists_are_the_chains,
        change,
        change_on_chain,
        issue_many,
        served,
    )

    one, two = workers
    creds = issue_many(one, holder.did, 30)
    entry = creds[0]["entry"]
    for worker in (one, two):  # each builds the lists from the node once, then keeps them
        assert_lists_are_the_chains(worker.call, issuer, creds)
    reads = two.node_reads
    for _ in range(3):
        served(two.call, entry, "revocation")
    assert two.node_reads == reads  # a kept list costs no state read of the node

    # No waiting: the other worker's next answer has it (it waits for the node's height)
    assert change(one.call, creds[3], "revoke").status_code == 200
    assert served(two.call, entry, "revocation").get(creds[3]["entry"]["index"]) == 1
    assert change(two.call, creds[4], "suspend").status_code == 200
    assert served(one.call, entry, "suspension").get(creds[4]["entry"]["index"]) == 1
    change_on_chain(issuer, creds[5], "revocation", 1)  # the agency itself, through the SDK
    for worker in (one, two):
        assert_lists_are_the_chains(worker.call, issuer, creds)


def _a_bearer_key_revoked_on_the_chain_stops_working_at_each_worker_with_its_block(
    workers: list[Worker], issuer: Any
) -> None:
    from chain.auth import mint_token
    from chain.crypto import SigningKey

    one, two = workers
    second = SigningKey.from_seed(b"bank-a's second key".ljust(32, b"\0"))
    issuer.chain_call("bank-a", "membership", "add_key", {"pub_key": second.public_hex})
    token = mint_token(second, org="bank-a", audience="identity")
    headers = {"Authorization": f"Bearer {token}"}
    for worker in (one, two):  # each has resolved (and kept) the key as bank-a's
        assert worker.client.get("/types/ResidenceCredential", headers=headers).status_code == 200

    issuer.chain_call("bank-a", "membership", "revoke_key", {"pub_key": second.public_hex})
    for worker in (one, two):
        deadline = time.monotonic() + 5.0
        while (
            answer := worker.client.get("/types/ResidenceCredential", headers=headers)
        ).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works after 5 s"
            time.sleep(0.01)
        assert answer.status_code == 401 and "not an active key" in answer.text, answer.text


def pid_app() -> Any:
    """A worker's app for the test below: it answers its process id."""
    import os

    from fastapi import FastAPI

    app = FastAPI()
    app.get("/pid")(lambda: os.getpid())
    return app


@pytest.mark.slow
def test_workers_share_one_port_and_stop_together(tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from tests.conftest import free_port

    port = free_port()
    code = (
        "import sys; from smartcity.workers import serve_workers;"
        "from tests.identity.test_workers import pid_app;"
        f"sys.exit(serve_workers(pid_app, (), host='127.0.0.1', port={port}, workers=2))"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": "."})
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        # New connections spread over both workers (16 in a row all to one: 1 in 32,768)
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                pids |= {httpx.get(f"http://127.0.0.1:{port}/pid").json() for _ in range(16)}
            except httpx.HTTPError:
                time.sleep(0.1)
        assert len(pids) == 2 and parent.pid not in pids
        # One worker dies: the other is stopped and the command exits non-zero for its supervisor
        os.kill(pids.pop(), signal.SIGKILL)
        assert parent.wait(20) == 1
        assert not os.path.exists(f"/proc/{pids.pop()}")
    finally:
        parent.kill()


def test_two_workers_issue_concurrent_batches_of_one_org_with_distinct_entries(
    workers: list[Worker], holder: Any
) -> None:
    from tests.identity.test_concurrent_issuance import post_batches

    # Two batches through each worker at once: the workers share only the database and chain
    answers = [
        answer
        for got in _concurrently(lambda w=w: post_batches(w, holder.did, 2, 200) for w in workers)
        for answer in got
    ]
    for answer in answers:
        assert answer.status_code == 201, answer.text
    entries = {
        (cred["status"][0]["list"], cred["status"][0]["index"])
        for answer in answers
        for cred in answer.json()["credentials"]
    }
    assert len(entries) == 4 * 200


def _concurrently(calls: Any) -> list[Any]:
    import threading

    calls = list(calls)
    results: list[Any] = [None] * len(calls)

    def run(number: int) -> None:
        results[number] = calls[number]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return results
