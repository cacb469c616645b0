"""Schemathesis over the credit service: no 5xx, and every answer is the one its OpenAPI states
(status code, content type, body schema, the error model of every 4xx included).

Each operation is called with a bearer token of an organisation holding the role it needs, so
requests reach the domain rather than stopping at a 403. The suite is credit_env's (PostgreSQL
when SMARTCITY_DATABASE_URL names one, else SQLite), with its model approved and one SME rated.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis

from services.credit import statement_csv
from tests._conformance import assert_bearer_and_errors, bearer, check_case, conformance
from tests.credit.service.conftest import CreditEnv

SME = "sme-demo"
# Who calls each operation: an organisation with the role it needs (city-agency otherwise)
CALLER = {
    ("GET", "/smes/{uscc}/rating"): "bank-a",
    ("GET", "/smes/{uscc}/ratings"): "regulator",
    ("GET", "/smes/{uscc}/inquiries"): "regulator",
    ("GET", "/inquiries"): "regulator",
    ("GET", "/banks/me/inquiries"): "bank-a",
    ("GET", "/consents"): "bank-a",
    ("POST", "/consents"): SME,
    ("POST", "/consents/revocations"): SME,
}


@pytest.fixture(scope="module")
def rated(credit_env: CreditEnv) -> CreditEnv:
    """A suite whose model is approved and whose demo SME is registered and rated."""
    env = credit_env
    env.approve_model(env.model_sha)
    uscc = str(env.statements["uscc"].iloc[0])
    assert env.post("/smes", SME, json={"uscc": uscc}).status_code == 201
    files = {"file": ("statements.csv", statement_csv(env.statements, uscc), "text/csv")}
    assert env.post(f"/smes/{uscc}/statements", SME, files=files).status_code == 201
    assert env.post(f"/smes/{uscc}/ratings", SME).status_code == 201
    return env


@pytest.fixture(scope="module")
def credit_schema(rated: CreditEnv) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", rated.suite.services["credit"])


@pytest.fixture(scope="module")
def tokens(rated: CreditEnv) -> dict[str, dict[str, str]]:
    orgs = {"city-agency", *CALLER.values()}
    return {org: bearer(rated.key(org), org=org, audience="credit") for org in orgs}


schema = schemathesis.pytest.from_fixture("credit_schema")


@schema.parametrize()
@conformance
def test_every_credit_operation_answers_as_its_openapi_says(
    case: Any, tokens: dict[str, dict[str, str]]
) -> None:
    org = CALLER.get((case.method.upper(), case.path), "city-agency")
    check_case(case, tokens[org])


def test_the_document_declares_bearer_auth_and_the_error_model(credit_schema: Any) -> None:
    assert_bearer_and_errors(credit_schema.raw_schema, everywhere={"400", "401", "403", "503"})


def test_a_nul_character_or_a_huge_offset_is_a_422_not_a_database_error(
    rated: CreditEnv, tokens: dict[str, dict[str, str]]
) -> None:
    # PostgreSQL cannot hold NUL in text nor an OFFSET beyond a bigint: these answered 500 there
    for path, org in [
        ("/inquiries?bank=%00", "regulator"),
        ("/inquiries?offset=9223372036854775808", "regulator"),
        ("/smes/%00", "city-agency"),
    ]:
        answer = rated.client.get(f"/credit{path}", headers=tokens[org])
        assert answer.status_code == 422, (path, answer.text)
    answer = rated.client.post(
        "/credit/smes",
        headers=tokens["city-agency"],
        json={"uscc": "91110108000000000X", "name": "a\u0000b"},
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "nul_character"
