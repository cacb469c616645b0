"""A client that leaves in the middle of its request body is not an error of the server.

Before, the node's raw body reads (POST /chain/v1/txs, the batch route) and the services' let
Starlette's ClientDisconnect escape the app: the server logged "Exception in ASGI application"
with a traceback for every dropped upload (found by a fuzz campaign against `smartcity up`).
Now it is 499 in the access log and one INFO line, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.common._suite import BODY_ROUTES


async def _leave_mid_body(app: Any, method: str, path: str) -> list[dict[str, Any]]:
    """One request over ASGI whose client sends part of its body, then disconnects."""
    part = b'{"contract": "anchors", "args": [1, 2'
    arriving: Iterator[dict[str, Any]] = iter(
        [{"type": "http.request", "body": part, "more_body": True}, {"type": "http.disconnect"}]
    )

    async def receive() -> dict[str, Any]:
        message = next(arriving, None)
        if message is None:  # a server asks again only after the disconnect: keep it waiting
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        return message

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"4096"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_client_leaving_mid_body_is_logged_once_not_as_an_error(
    suite_client: Any, caplog: pytest.LogCaptureFixture, method: str, path: str
) -> None:
    caplog.set_level(logging.INFO)
    sent = suite_client.portal.call(_leave_mid_body, suite_client.app, method, path)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    left = [r.getMessage() for r in caplog.records if r.name == "smartcity.http"]
    assert left == [f"{method} {path}: the client left before its body arrived"]
    # and the server goes on answering
    assert suite_client.get("/healthz").status_code == 200
