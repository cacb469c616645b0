"""Every service operation refuses a query parameter it does not take, and a single-valued one
given twice, with a 400 that names it (found by schemathesis: `GET /roadhealth/v1/alerts?limit=1
&limit=2` answered with one of the two, the caller never told which)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SERVICES = ("identity", "credit", "roadhealth")


def _operations(client: Any) -> list[tuple[str, str, str, bool]]:
    """(method, path, a query parameter, whether it takes many values) of every service
    operation without path parameters, read from the services' own OpenAPI documents."""
    found = []
    for service in SERVICES:
        document = client.get(f"/{service}/openapi.json").json()
        for path, operations in document["paths"].items():
            if "{" in path:
                continue
            for method, operation in operations.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "query":
                        many = _is_array(parameter["schema"])
                        found.append((method.upper(), f"/{service}{path}", parameter["name"], many))
    return found


def _is_array(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "array" or any(_is_array(s) for s in schema.get("anyOf", []))


@pytest.fixture(scope="module")
def operations(suite_client: Any) -> list[tuple[str, str, str, bool]]:
    found = _operations(suite_client)
    assert len({path for _, path, _, _ in found}) >= 5  # the walk found the services' reads
    return found


_value = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=8)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), times=st.integers(min_value=2, max_value=4))
def test_a_single_valued_parameter_given_twice_is_refused_by_name(
    suite_client: Any, operations: list[tuple[str, str, str, bool]], data: Any, times: int
) -> None:
    single = [op for op in operations if not op[3]]
    method, path, name, _ = data.draw(st.sampled_from(single))
    values = data.draw(st.lists(_value, min_size=times, max_size=times))
    response = suite_client.request(method, path, params=[(name, v) for v in values])
    assert response.status_code == 400, (method, path, name, response.text)
    error = response.json()["error"]
    assert error["code"] == "repeated_query_parameter"
    assert error["message"] == (
        f"query parameter {name!r} is given {times} times; this operation takes one value"
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_an_unknown_parameter_is_refused_by_name(
    suite_client: Any, operations: list[tuple[str, str, str, bool]], data: Any
) -> None:
    method, path, _, _ = data.draw(st.sampled_from(operations))
    declared = {name for m, p, name, _ in operations if (m, p) == (method, path)}
    unknown = data.draw(_value.filter(lambda n: n not in declared))
    response = suite_client.request(method, path, params={unknown: "1"})
    assert response.status_code == 400, (method, path, unknown, response.text)
    error = response.json()["error"]
    assert error["code"] == "unknown_query_parameter"
    assert error["message"].startswith(f"unknown query parameter {unknown!r}; this operation takes")


def test_a_parameter_given_once_is_not_refused_for_it(suite_client: Any) -> None:
    response = suite_client.get("/roadhealth/v1/alerts", params={"limit": "2"})
    assert response.json().get("error", {}).get("code") not in (
        "repeated_query_parameter",
        "unknown_query_parameter",
    )
