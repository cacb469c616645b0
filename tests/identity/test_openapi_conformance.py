"""Schemathesis over the identity service: no 5xx, and every answer is the one its OpenAPI states.

Each operation gets generated requests (a bearer token of an agency, which may call every
operation); each answer must be documented: status code, content type, body schema (the error
model of every 4xx included), timezone-aware times.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import settings

from tests._conformance import EXCUSED, conformance

ORG = "city-agency"


@pytest.fixture(scope="module")
def running_identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One suite for the module: schemathesis calls every operation against it."""
    from fastapi.testclient import TestClient

    from smartcity.registry import IDENTITY
    from smartcity.suite import open_suite

    data = Path(tmp_path_factory.mktemp("identity-openapi"))
    suite = open_suite(
        data / "data", database_url=f"sqlite:///{data / 'db.sqlite'}", services=[IDENTITY]
    )
    with TestClient(suite.app):
        yield suite


@pytest.fixture(scope="module")
def identity_schema(running_identity: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", running_identity.services["identity"])


@pytest.fixture(scope="module")
def bearer(running_identity: Any) -> dict[str, str]:
    from chain.auth import mint_token
    from chain.home import SuiteHome

    key = SuiteHome(running_identity.data).org_key(ORG)
    token = mint_token(key, org=ORG, audience="identity", ttl_s=3600)
    return {"Authorization": f"Bearer {token}"}


schema = schemathesis.pytest.from_fixture("identity_schema")


@schema.parametrize()
@settings(conformance, max_examples=12)
def test_every_identity_operation_answers_as_its_openapi_says(case: Any, bearer: Any) -> None:
    response = case.call(headers=bearer)
    case.validate_response(response, excluded_checks=EXCUSED)


def test_the_document_declares_bearer_auth_errors_and_aware_times(identity_schema: Any) -> None:
    document = identity_schema.raw_schema
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"400", "401", "503"} <= statuses, (method, path, statuses)
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["properties"]["error"]["$ref"].endswith("/ErrorDetail")
