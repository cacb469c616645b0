"""The node API through the SDK, as a bank or a regulator would use it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from chain.api import create_app
from chain.auth import mint_token
from chain.client import AsyncChainClient, ChainClient, Identity
from chain.errors import ClientError
from chain.genesis import Genesis
from chain.node import Node
from chain.tx import Tx

ROOT = "ab" * 32


@pytest.fixture
def server(node: Node, live_server: Callable[[Any], Any]) -> Iterator[Any]:
    with live_server(create_app(node)) as running:
        yield running


@pytest.fixture
def client(server: Any, keys: SimpleNamespace) -> Iterator[ChainClient]:
    with ChainClient(server.url, identity=Identity("regulator", keys.regulator)) as c:
        yield c


def anchor(sign: Callable[..., Tx], key: Any, root: str = ROOT) -> Tx:
    return sign(key, "anchors", "anchor", {"root": root, "count": 1, "label": "t"})


def test_submit_wait_receipt_block_and_proof(
    client: ChainClient, keys: SimpleNamespace, sign: Callable[..., Tx], genesis: Genesis
) -> None:
    tx = anchor(sign, keys.agency)
    receipt = client.submit_and_wait(tx)
    assert receipt["status"] == "ok" and receipt["tx"] == tx.hash
    info = client.tx(tx.hash)
    assert info["status"] == "committed" and info["height"] == receipt["height"]
    block = client.block(receipt["height"])
    assert tx.hash in block["txs"] and block["header"]["height"] == receipt["height"]
    assert client.block("latest")["hash"] == block["hash"]
    proven = client.verified_proof(tx.hash, genesis)
    assert proven.facts["tx"] == tx.hash
    # retrying a committed transaction returns its receipt instead of an error
    assert client.submit_and_wait(tx)["tx"] == tx.hash


def test_verified_state_reads(
    client: ChainClient, keys: SimpleNamespace, sign: Callable[..., Tx], genesis: Genesis
) -> None:
    tx = anchor(sign, keys.agency)
    client.submit_and_wait(tx)
    assert client.state("anchors", f"root:city-agency:{ROOT}", verify_with=genesis) == tx.hash
    assert client.state("anchors", "root:none", verify_with=genesis) is None
    org = client.state("membership", "org:bank-a", verify_with=genesis)
    assert org["roles"] == ["bank"]


def test_errors_carry_code_and_reason(
    client: ChainClient, server: Any, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    with pytest.raises(ClientError) as caught:
        client.submit(anchor(sign, keys.outsider))
    assert (caught.value.status, caught.value.code) == (403, "unknown_sender")
    with pytest.raises(ClientError) as caught:
        client.tx("00" * 32)
    assert caught.value.status == 404 and "no transaction" in str(caught.value)
    with pytest.raises(ClientError) as caught:
        client.block(999)
    assert caught.value.code == "unknown_block"
    raw = httpx.post(f"{server.url}/v1/txs", content=b'{"chain_id": ')
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "tx_malformed"


def test_reads_need_a_registered_members_token(server: Any, keys: SimpleNamespace) -> None:
    def status(token: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{server.url}/v1/status", headers=headers)

    assert status(None).status_code == 401
    assert "missing bearer token" in status(None).json()["error"]["message"]
    assert status(mint_token(keys.outsider, org="nobody", audience="chain")).status_code == 401
    assert (
        "not an active key"
        in status(mint_token(keys.outsider, org="x", audience="chain")).json()["error"]["message"]
    )
    wrong_aud = status(mint_token(keys.bank, org="bank-a", audience="credit"))
    assert wrong_aud.status_code == 401 and "audience" in wrong_aud.json()["error"]["message"]
    expired = status(mint_token(keys.bank, org="bank-a", audience="chain", ttl_s=60, now=1_000_000))
    assert "expired" in expired.json()["error"]["message"]
    wrong_org = status(mint_token(keys.bank, org="regulator", audience="chain"))
    assert "belongs to bank-a" in wrong_org.json()["error"]["message"]
    good = mint_token(keys.bank, org="bank-a", audience="chain")
    forged = good[: good.rindex(".") + 1] + ("A" * 86)
    assert "signature" in status(forged).json()["error"]["message"]
    assert status(good).status_code == 200
    # The node remembers the good token's signature, under the whole token: the forgery is
    # still refused after it, and the good one still read with
    assert "signature" in status(forged).json()["error"]["message"]
    assert status(good).status_code == 200


def test_batch_reports_each_transaction(
    client: ChainClient, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    good = [anchor(sign, keys.agency, f"{i:064x}") for i in range(1, 4)]
    bad = anchor(sign, keys.outsider, "ee" * 32)
    result = client.submit_batch([good[0], bad, good[1], good[2], good[0]])
    assert [r["status"] for r in result["results"]] == [
        "pending",
        "rejected",
        "pending",
        "pending",
        "duplicate",
    ]
    assert result["results"][1]["code"] == "unknown_sender"
    assert (result["accepted"], result["rejected"]) == (4, 1)
    for tx in good:
        assert client.submit_and_wait(tx)["status"] == "ok"


def test_a_batch_refuses_an_oversized_transaction_alone(
    server: Any, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    """Over MAX_TX_BYTES in canonical form: refused with 413 by itself, the rest admitted."""
    from chain.auth import AUDIENCE_CHAIN
    from chain.tx import MAX_TX_BYTES

    good = [anchor(sign, keys.agency, f"{i:064x}") for i in (0xA1, 0xA2)]
    body = good[0].to_json()
    huge = {**body, "args": {**body["args"], "label": "x" * MAX_TX_BYTES}}
    token = mint_token(keys.regulator, org="regulator", audience=AUDIENCE_CHAIN)
    response = httpx.post(
        f"{server.url}/v1/txs/batch",
        json={"txs": [good[0].to_json(), huge, good[1].to_json()]},
        headers={"authorization": f"Bearer {token}"},
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["pending", "rejected", "pending"]
    assert (results[1]["code"], results[1]["http_status"]) == ("tx_too_large", 413)


def test_event_stream_delivers_blocks_with_contract_events(
    server: Any, keys: SimpleNamespace, sign: Callable[..., Tx]
) -> None:
    identity = Identity("bank-a", keys.bank)
    received: list[dict[str, Any]] = []

    def listen() -> None:
        with ChainClient(server.url, identity=identity) as reader:
            for message in reader.events(from_height=1):
                received.append(message)
                if len(received) == 3:
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    with ChainClient(server.url, identity=identity) as writer:
        writer.submit_and_wait(anchor(sign, keys.agency, "01" * 32))
        writer.submit_and_wait(anchor(sign, keys.agency, "02" * 32))
    thread.join(timeout=15)
    assert [m["height"] for m in received] == [1, 2, 3]  # block 1 certifies the genesis state
    assert received[2]["events"][0]["name"] == "anchored"
    assert received[2]["events"][0]["data"]["root"] == "02" * 32


def test_async_client(
    server: Any, keys: SimpleNamespace, sign: Callable[..., Tx], genesis: Genesis
) -> None:
    async def scenario() -> dict[str, Any]:
        async with AsyncChainClient(server.url, identity=Identity("bank-a", keys.bank)) as client:
            tx = anchor(sign, keys.bank, "0a" * 32)
            receipt = await client.submit_and_wait(tx)
            assert (
                await client.state("anchors", f"root:bank-a:{'0a' * 32}", verify_with=genesis)
                == tx.hash
            )
            async for message in client.events(from_height=receipt["height"]):
                return message
        raise AssertionError("no event")

    message = asyncio.run(scenario())
    assert message["events"][0]["name"] == "anchored"


def test_openapi_documents_every_endpoint(server: Any) -> None:
    paths = json.loads(httpx.get(f"{server.url}/openapi.json").text)["paths"]
    for path in [
        "/v1/txs",
        "/v1/txs/batch",
        "/v1/txs/{tx_hash}",
        "/v1/txs/{tx_hash}/proof",
        "/v1/blocks/{height}",
        "/v1/state/{namespace}/{key}",
        "/v1/state/{namespace}/read",
        "/v1/status",
        "/v1/validators",
        "/v1/events",
    ]:
        assert path in paths


def test_tokens_with_odd_lifetimes_or_duplicate_claims_are_refused(keys: SimpleNamespace) -> None:
    import base64

    from chain.auth import AuthError, verify_token

    registered = {keys.bank.public_hex: ("bank-a", frozenset({"bank"}))}.get
    token = mint_token(keys.bank, org="bank-a", audience="chain")
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    for bad in ({**claims, "exp": claims["iat"]}, {**claims, "exp": True}):
        forged_payload = base64.urlsafe_b64encode(json.dumps(bad).encode()).rstrip(b"=").decode()
        with pytest.raises(AuthError):
            verify_token(f"{header}.{forged_payload}.{sig}", audience="chain", resolve=registered)
    duplicated = json.dumps(claims)[:-1] + ', "aud": "chain"}'
    dup_payload = base64.urlsafe_b64encode(duplicated.encode()).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="duplicate"):
        verify_token(f"{header}.{dup_payload}.{sig}", audience="chain", resolve=registered)
