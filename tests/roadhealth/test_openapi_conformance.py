"""Schemathesis over the road-health service: no 5xx, and every answer is the one its OpenAPI
states (status code, content type, body schema, the error model of every 4xx included).

Each operation is called with a bearer token of the organisation its role needs (the gateway
operator ingests, the road authority does everything else), so requests reach the domain.
Runs on PostgreSQL when SMARTCITY_DATABASE_URL names one, else on SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from chain.home import SuiteHome
from smartcity.roadhealth_harness import Harness, running
from tests._conformance import assert_bearer_and_errors, bearer, check_case, conformance


def _database_url(tmp: Path) -> tuple[str, Any]:
    base = os.environ.get("SMARTCITY_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        return f"sqlite:///{tmp / 'db.sqlite'}", lambda: None
    from tests.conftest import fresh_database_url

    return fresh_database_url("postgresql", tmp)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("roadhealth-openapi")
    url, drop = _database_url(tmp)
    try:
        with running(tmp, url) as h:
            yield h
    finally:
        drop()


@pytest.fixture(scope="module")
def roadhealth_schema(harness: Harness) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", harness.suite.services["roadhealth"])


@pytest.fixture(scope="module")
def tokens(harness: Harness) -> dict[str, dict[str, str]]:
    home = SuiteHome(harness.data)
    return {
        org: bearer(home.org_key(org), org=org, audience="roadhealth")
        for org in ("bsn-operator", "road-authority")
    }


schema = schemathesis.pytest.from_fixture("roadhealth_schema")


@schema.parametrize()
@conformance
def test_every_roadhealth_operation_answers_as_its_openapi_says(
    case: Any, tokens: dict[str, dict[str, str]]
) -> None:
    org = "bsn-operator" if case.path.endswith("/ingest") else "road-authority"
    check_case(case, tokens[org])


def test_the_document_declares_bearer_auth_and_the_error_model(roadhealth_schema: Any) -> None:
    assert_bearer_and_errors(roadhealth_schema.raw_schema, everywhere={"400", "401", "403", "503"})


def test_a_nul_character_anywhere_is_a_422_not_a_database_error(
    harness: Harness, tokens: dict[str, dict[str, str]]
) -> None:
    # PostgreSQL cannot hold NUL in text: each of these answered 500 there
    auth = tokens["road-authority"]
    for path in [
        "/segments/a%00b",
        "/segments/a%00b/series",
        "/alerts?segment=%00",
        "/readings/%00/1/proof",
        "/devices/%00",
    ]:
        answer = harness.client.get(f"/roadhealth/v1{path}", headers=auth)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["error"]["code"] == "nul_character", answer.text
    answer = harness.client.post(
        "/roadhealth/v1/webhooks", headers=auth, json={"url": "https://x.example/\u0000"}
    )
    assert answer.status_code == 422 and "NUL" in answer.json()["error"]["message"], answer.text
