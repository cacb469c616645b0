"""A status list built from the chain (a worker's first GET of it): the chain's status keys
read in a few requests of many keys, not one request per credential, with the same bits as
one read per key, from the embedded chain and from a remote node alike.

A full list is 131,072 credentials: one HTTP round trip each took 150 s from a remote node, and
a verifier's first GET after a worker restarted timed out (bench/identity_status_cold.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest

from chain.api import create_app
from chain.client import ChainClient, Identity
from services.common.ledger import RemoteLedger
from services.identity import contract as c
from services.identity.credentials.status_list import StatusList
from services.identity.runtime import Runtime
from services.identity.service import status
from services.identity.service.status import bits_from_chain
from services.identity.status_mirror import ListKey

from .test_status_list import AGENCY, change, change_on_chain, issue_many

ISSUED = 40


class Counting(httpx.HTTPTransport):
    """A client's transport noting each request it sends: (method, path, keys asked for)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        asked = len(json.loads(request.content)["keys"]) if request.method == "POST" else 1
        self.sent.append((request.method, request.url.path, asked))
        return super().handle_request(request)


@pytest.fixture
def changed(issuer: Any, holder: Any) -> list[dict[str, Any]]:
    """ISSUED credentials in one list, some revoked or suspended, through the service or not."""
    creds = issue_many(issuer, holder.did, ISSUED)
    for cred in creds[:3]:
        assert change(issuer.call, cred, "revoke").status_code == 200
    assert change(issuer.call, creds[3], "suspend").status_code == 200
    change_on_chain(issuer, creds[4], "revocation", 1)
    change_on_chain(issuer, creds[5], "suspension", 1)
    change_on_chain(issuer, creds[5], "suspension", 0)
    return creds


@contextmanager
def remote_runtime(idn: Any, live_server: Any) -> Iterator[tuple[Runtime, Counting]]:
    """The service's runtime reading the same chain through a node's HTTP API."""
    rt: Runtime = idn.suite.services["identity"].state.env
    transport = Counting()
    with (
        live_server(create_app(idn.suite.node)) as server,
        ChainClient(
            server.url, identity=Identity(AGENCY, idn.key(AGENCY)), transport=transport
        ) as client,
    ):
        ledger = RemoteLedger(client, idn.genesis)
        yield replace(rt, ctx=replace(rt.ctx, ledger=ledger)), transport


def key_by_key(idn: Any, creds: list[dict[str, Any]], purpose: str) -> bytes:
    """The list's bits as bits_from_chain read them before: one chain read per credential."""
    bits = StatusList()
    for cred in creds:
        entry = cred["entry"]
        record = idn.ledger.read(
            c.NAMESPACE, c.status_key(AGENCY, entry["list"], purpose, entry["index"])
        )
        bits.set(entry["index"], 0 if record is None else int(record["value"]))
    return bits.to_bytes()


def built(idn: Any, rt: Runtime, key: ListKey) -> bytes:
    with idn.suite.services["identity"].state.sessions() as session:
        result = bits_from_chain(rt=rt, session=session, key=key)
    assert result.keep
    return result.bits.to_bytes()


@pytest.mark.parametrize("chunk", [7, status.READ_CHUNK])
def test_the_bits_are_one_read_per_key_s_from_the_embedded_chain_and_a_remote_node(
    issuer: Any,
    changed: list[dict[str, Any]],
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    monkeypatch.setattr(status, "READ_CHUNK", chunk)
    embedded: Runtime = issuer.suite.services["identity"].state.env
    list_no = changed[0]["entry"]["list"]
    for purpose in ("revocation", "suspension"):
        expected = key_by_key(issuer, changed, purpose)
        assert any(expected), purpose  # some bits are set: the comparison means something
        key = ListKey(AGENCY, list_no, purpose)
        assert built(issuer, embedded, key) == expected, purpose
        with remote_runtime(issuer, live_server) as (remote, transport):
            assert built(issuer, remote, key) == expected, purpose
        # One request per READ_CHUNK credentials, each asking for its whole chunk
        requests = math.ceil(ISSUED / chunk)
        assert [sent[:2] for sent in transport.sent] == [
            ("POST", f"/v1/state/{c.NAMESPACE}/read")
        ] * requests
        assert [sent[2] for sent in transport.sent] == [
            min(chunk, ISSUED - n * chunk) for n in range(requests)
        ]
