"""`smartcity up` serves every node's own API under /nodes/<name>, built on its first request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chain.auth import mint_token
from chain.home import SuiteHome, load_node_home
from smartcity.suite import BuiltOnFirstUse, open_suite


@pytest.fixture
def suite_client(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    data = tmp_path / "data"
    suite = open_suite(data, services=[])
    with TestClient(suite.app) as client:
        yield client, data


def test_each_node_answers_under_its_own_path_as_itself(
    suite_client: tuple[TestClient, Path],
) -> None:
    client, data = suite_client
    token = mint_token(SuiteHome(data).org_key("regulator"), org="regulator", audience="chain")
    headers = {"Authorization": f"Bearer {token}"}
    names = sorted(p.name for p in (data / "nodes").iterdir())
    assert names == ["observer-0", "validator-0", "validator-1", "validator-2", "validator-3"]
    for name in names:
        answer = client.get(f"/nodes/{name}/v1/status", headers=headers)
        assert answer.status_code == 200, answer.text
        status = answer.json()
        role = name.split("-")[0]
        key = load_node_home(data / "nodes" / name).key().public_hex
        assert status["role"] == role
        assert status["node_key"] == (key if role == "validator" else None)
    # A node's API refuses as the chain's does, and an unknown node is not found
    assert client.get("/nodes/validator-1/v1/status").status_code == 401
    assert client.get("/nodes/validator-9/v1/status", headers=headers).status_code == 404


def test_an_app_built_on_first_use_is_built_once_whoever_asks_first() -> None:
    built: list[int] = []
    started = threading.Barrier(8)

    def build() -> object:
        built.append(1)

        async def app(scope: object, receive: object, send: object) -> None:
            return None

        return app

    lazy = BuiltOnFirstUse(build)  # type: ignore[arg-type]
    assert built == []

    def call() -> None:
        started.wait()
        asyncio.run(lazy({"type": "http"}, None, None))  # type: ignore[arg-type]

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == [1]
