"""Schemathesis over the node's HTTP API: no 5xx, and every answer is the one its OpenAPI states
(status code, content type, body schema, the error model of every 4xx included).

Reads are made with a bearer token of a registered organisation (bank-a), so requests reach the
ledger rather than stopping at a 401. The event stream never ends, so it is left out here
(tests/chain/test_api.py reads it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient

from chain.api import create_app
from chain.node import Node
from chain.tx import Tx
from tests._conformance import bearer, check_case, conformance


@pytest.fixture
def chain_schema(node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]) -> Any:
    # One committed transaction, so that blocks, transactions and proofs exist to be read
    tx = sign(keys.agency, "anchors", "anchor", {"root": "ab" * 32, "count": 1, "label": "t"})
    node.submit([tx])
    assert node.wait(tx.hash, 10) is not None
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(node))


@pytest.fixture
def token(keys: SimpleNamespace) -> dict[str, str]:
    return bearer(keys.bank, org="bank-a", audience="chain")


schema = schemathesis.pytest.from_fixture("chain_schema")


@schema.exclude(path="/v1/events").parametrize()
@conformance
def test_every_node_operation_answers_as_its_openapi_says(case: Any, token: dict[str, str]) -> None:
    check_case(case, token)


@pytest.fixture
def api(node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as client:
        yield client


def test_a_malformed_transaction_hash_is_unknown_not_a_storage_outage(
    api: TestClient, token: dict[str, str]
) -> None:
    # On PostgreSQL a NUL in the hash reached the database and answered 503
    # storage_unavailable with Retry-After, so a client retried a request that can never succeed
    for path in ["/v1/txs/%00", "/v1/txs/a%00b/proof", "/v1/txs/" + "AB" * 32]:
        answer = api.get(path, headers=token)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] == "unknown_tx"


def test_a_state_key_no_contract_can_write_is_refused_with_its_reason(
    api: TestClient, token: dict[str, str]
) -> None:
    # These were served a bundle that verify-proof then refused, or (a line break) the route's
    # bare 404
    for namespace, key in [
        ("anchors", "a%0Ab"),
        ("anchors", "a%09b"),
        ("anchors", "a%00b"),
        ("Anchors", "x"),
        ("anchors", "k" * 257),
    ]:
        answer = api.get(f"/v1/state/{namespace}/{key}", headers=token)
        assert answer.status_code == 400, (namespace, key, answer.text)
        assert answer.json()["error"]["code"] == "bad_key"
    answer = api.get("/v1/state/anchors/a/b%20c", headers=token)
    assert answer.status_code == 200 and answer.json()["key"] == "a/b c"


def test_every_refusal_is_the_error_envelope(api: TestClient, token: dict[str, str]) -> None:
    # FastAPI's own validation and Starlette's 404/405 answered {"detail": ...}
    refused = [
        ("POST", "/v1/txs?timeout_s=0", 422),
        ("GET", "/v1/evidence?limit=0", 422),
        ("GET", "/v1/nowhere", 404),
        ("DELETE", "/v1/status", 405),
    ]
    for method, path, status in refused:
        answer = api.request(method, path, headers=token, content=b"{}")
        assert answer.status_code == status, (path, answer.text)
        assert set(answer.json()) == {"error"} and answer.json()["error"]["code"], path
    assert (
        "query.timeout_s"
        in api.post("/v1/txs?timeout_s=0", content=b"{}").json()["error"]["message"]
    )


def test_the_document_declares_bearer_reads_and_each_operations_errors(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            submits = path.startswith("/v1/txs") and method == "post"
            # Submitting needs no token (the transaction is signed); every read does
            assert operation["security"] == ([] if submits else [{"bearerAuth": []}]), path
            assert ("401" in responses) == (not submits or path == "/v1/txs"), (method, path)
            for status in [s for s in responses if int(s) >= 400]:
                body = responses[status]["content"]["application/json"]["schema"]
                assert body == error_ref, (method, path, status)
            # 422 only where a parameter can break its schema; 404 only where a path names one
            assert ("422" in responses) == bool(operation.get("parameters")), (method, path)
    assert {"400", "401", "403", "409", "413", "429", "503", "504"} <= set(
        document["paths"]["/v1/txs"]["post"]["responses"]
    )
    assert "404" not in document["paths"]["/v1/status"]["get"]["responses"]
