"""The node and every service refuse a body one byte over its limit with 413 (or the route's own
error), with and without Content-Length, after reading at most one chunk past the limit; a
valid request right after is served as before (chain.bodies)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.api_doc import MAX_BATCH_BYTES
from chain.home import SuiteHome
from chain.reads import MAX_READ_BODY_BYTES
from chain.tx import MAX_TX_BYTES, sign_tx
from services.credit.app import MAX_BODY_BYTES as CREDIT_MAX
from services.credit.service.uploads import MAX_UPLOAD_BYTES
from services.identity.app import MAX_BODY_BYTES as IDENTITY_MAX
from services.roadhealth.api import MAX_IMPORT_BYTES
from services.roadhealth.app import MAX_BODY_BYTES as ROADHEALTH_MAX
from tests._conformance import bearer

USCC = "91440300000000019B"
CHUNK = 1024 * 1024
# path, content type, limit, and the status and code of a body past it
LIMITS = [
    ("/chain/v1/txs", "application/json", MAX_TX_BYTES, 413, "tx_too_large"),
    ("/chain/v1/txs/batch", "application/json", MAX_BATCH_BYTES, 413, "batch_too_large"),
    (
        "/chain/v1/state/anchors/read",
        "application/json",
        MAX_READ_BODY_BYTES,
        413,
        "read_too_large",
    ),
    ("/identity/types", "application/json", IDENTITY_MAX, 413, "body_too_large"),
    ("/credit/smes/batch", "application/json", CREDIT_MAX, 413, "body_too_large"),
    (f"/credit/smes/{USCC}/statements", "text/csv", MAX_UPLOAD_BYTES, 413, "too_large"),
    ("/roadhealth/v1/ingest", "application/json", ROADHEALTH_MAX, 413, "body_too_large"),
    ("/roadhealth/v1/segments", "application/geo+json", MAX_IMPORT_BYTES, 422, "malformed_geojson"),
]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    from fastapi.testclient import TestClient

    from smartcity.registry import CREDIT, IDENTITY, ROADHEALTH
    from smartcity.suite import open_suite

    data = tmp_path_factory.mktemp("suite") / "data"
    opened = open_suite(data, services=[IDENTITY, CREDIT, ROADHEALTH])
    with TestClient(opened.app) as client:
        yield client, data


async def _post(app: Any, path: str, headers: dict[str, str], size: int) -> tuple[int, Any, int]:
    """POST `size` bytes in chunks over ASGI: (status, JSON answer, chunks the app pulled)."""
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        sent = 0
        while sent < size:
            pulled += 1
            part = min(CHUNK, size - sent)
            sent += part
            yield b" " * part

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(path, content=chunks(), headers=headers)
    return answer.status_code, answer.json(), pulled


def _chain_token(data: Path) -> dict[str, str]:
    return bearer(SuiteHome(data).org_key("bank-a"), org="bank-a", audience="chain")


@pytest.mark.parametrize(("path", "media", "limit", "status", "code"), LIMITS)
def test_one_byte_over_the_limit_is_refused_declared_chunked_or_lied_about(
    suite: tuple[Any, Path], path: str, media: str, limit: int, status: int, code: str
) -> None:
    client, data = suite
    base = {"content-type": media, **_chain_token(data)}
    cases = [
        ({"content-length": str(limit + 1)}, limit + 1),  # declared: refused before reading
        ({}, limit + 1),  # chunked, no Content-Length
        ({}, 10 * limit),  # ten times over, chunked
        ({"content-length": "2"}, 10 * limit),  # a Content-Length lying low
    ]
    for extra, size in cases:
        answer, body, pulled = client.portal.call(_post, client.app, path, {**base, **extra}, size)
        assert (answer, body["error"]["code"]) == (status, code), (path, extra, size, body)
        # Read to at most one chunk past the limit (none when the declared size says it all)
        most = 0 if "content-length" in extra and size == limit + 1 else limit // CHUNK + 1
        assert pulled <= most, (path, extra, size, pulled)


def test_a_valid_request_right_after_is_served(suite: tuple[Any, Path]) -> None:
    client, data = suite
    home = SuiteHome(data)
    key = home.org_key("bank-a")
    height = client.get("/chain/v1/status", headers=_chain_token(data)).json()["height"]
    for path, media, limit, _status, _code in LIMITS:
        headers = {"content-type": media, **_chain_token(data)}
        client.portal.call(_post, client.app, path, headers, limit + 1)
    tx = sign_tx(
        key,
        chain_id=home.genesis().chain_id,
        contract="anchors",
        method="anchor",
        args={"root": "cd" * 32, "count": 1, "label": "after a refusal"},
        expiry_height=height + 100,
    )
    answer = client.post("/chain/v1/txs?wait=true", json=tx.to_json(), headers=_chain_token(data))
    assert answer.status_code == 200, answer.text
    assert answer.json()["receipt"]["status"] == "ok"
    read = client.post(
        "/chain/v1/state/anchors/read", json={"keys": ["x"]}, headers=_chain_token(data)
    )
    assert read.status_code == 200, read.text


def _raw_http(port: int, head: str, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        return answer


def test_a_real_server_refuses_early_and_reads_no_more_than_declared(
    suite: tuple[Any, Path], live_server: Any
) -> None:
    client, data = suite
    auth = _chain_token(data)["Authorization"]
    with live_server(client.app) as server, httpx.Client(base_url=server.url, timeout=30) as http:

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b" " * (MAX_READ_BODY_BYTES // 4)

        answer = http.post(
            "/chain/v1/state/anchors/read",
            content=chunks(),
            headers={"content-type": "application/json", "authorization": auth},
        )
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "read_too_large"
        # declared over the ceiling: answered before the body is sent, and the link closed
        head = (
            "POST /identity/types HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            f"content-length: {IDENTITY_MAX + 1}\r\n\r\n"
        )
        raw = _raw_http(server.port, head, b"")
        assert raw.startswith(b"HTTP/1.1 413") and b"body_too_large" in raw
        assert b"connection: close" in raw.lower()
        # a Content-Length lying low: the server reads only what it declares
        head = (
            "POST /chain/v1/txs HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            "content-length: 2\r\nconnection: close\r\n\r\n"
        )
        raw = _raw_http(server.port, head, b"{}" + b" " * (4 * MAX_TX_BYTES))
        assert raw.startswith(b"HTTP/1.1 400") and b"tx_malformed" in raw
        assert http.get("/healthz").status_code == 200


# A route of each app that takes no body, and the app's ceiling
NO_BODY_ROUTES = [
    ("chain", "/v1/blocks/{height}", "/v1/blocks/1", MAX_BATCH_BYTES),
    ("identity", "/types/{name}", "/types/x", IDENTITY_MAX),
    ("credit", "/smes", "/smes", CREDIT_MAX),
    ("roadhealth", "/v1/segments", "/v1/segments", ROADHEALTH_MAX),
]


@pytest.mark.parametrize(("app", "template", "path", "ceiling"), NO_BODY_ROUTES)
def test_a_get_declaring_a_body_over_the_ceiling_gets_the_413_its_document_declares(
    suite: tuple[Any, Path], live_server: Any, app: str, template: str, path: str, ceiling: int
) -> None:
    client, _ = suite
    declared = client.get(f"/{app}/openapi.json").json()["paths"][template]["get"]["responses"]
    assert "body_too_large" in declared["413"]["description"]
    with live_server(client.app) as server:
        head = (
            f"GET /{app}{path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
            f"content-length: {ceiling + 1}\r\n\r\n"
        )
        raw = _raw_http(server.port, head, b"")
    # Refused on its Content-Length alone, before authentication or the route, and the link
    # closed since the body is never read
    assert raw.startswith(b"HTTP/1.1 413") and b'"body_too_large"' in raw
    assert b"connection: close" in raw.lower()
