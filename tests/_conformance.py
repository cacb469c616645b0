"""What the services' OpenAPI conformance tests share (schemathesis against each service)."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from chain.auth import mint_token
from chain.suites import SuiteKey

# Generated cases per operation (OPENAPI_EXAMPLES raises it for a deeper search)
conformance = settings(
    max_examples=int(os.environ.get("OPENAPI_EXAMPLES", "10")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
# positive_data_acceptance expects every schema-valid body to be accepted, but each service
# checks what JSON Schema cannot say (a USCC's check character, a point on its curve, an
# anchor committed on the chain, a transaction signed by the caller, ...) and answers those
# with the documented 4xx naming the problem.
EXCUSED = [schemathesis.checks.positive_data_acceptance]


def bearer(key: SuiteKey, *, org: str, audience: str) -> dict[str, str]:
    """An Authorization header for ORG's key, valid for an hour."""
    return {"Authorization": "Bearer " + mint_token(key, org=org, audience=audience, ttl_s=3600)}


def check_case(case: Any, headers: dict[str, str]) -> None:
    """Call one generated case as the given caller and hold the answer to the document.

    A case generated negative in its headers without an Authorization header (the security
    scheme's header left out on purpose) is sent without one, so that it stays the request
    schemathesis means it to be: adding the caller's token would make it valid, and a 2xx to it
    would then read as "invalid data accepted".
    """
    meta = case.meta
    unauthenticated = (
        meta is not None
        and meta.is_negative_at(ParameterLocation.HEADER)
        and "authorization" not in {name.lower() for name in (case.headers or {})}
    )
    response = case.call() if unauthenticated else case.call(headers=headers)
    case.validate_response(response, excluded_checks=EXCUSED)


def assert_bearer_and_errors(document: dict[str, Any], *, everywhere: set[str]) -> None:
    """Every operation declares bearer auth and the `everywhere` statuses, and every error
    status it declares has the service's error body (which statuses each operation declares
    is tests/common/test_openapi_statuses.py's concern)."""
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert everywhere <= set(responses), (method, path)
            for status in [s for s in responses if int(s) >= 400]:
                body = responses[status]["content"]["application/json"]["schema"]
                assert body == error_ref, (method, path, status)
