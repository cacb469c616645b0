"""Each service operation declares exactly the error statuses it can answer, with the error model.

The statuses an operation's dependencies answer are read from the route (services.common.openapi
`route_answers`); the ones its domain code raises are read from the source (tests/_raises.py)
and must be the ones the route declares with `raises(...)`: a status declared that the code
cannot raise fails here, and so does one the code raises that is not declared (schemathesis'
status_code_conformance, in each service's conformance test, catches those it meets at run time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.routing import APIRoute

from chain.auth import AuthError
from chain.errors import TxRejected
from services.common.auth import authenticator
from services.common.errors import ServiceError
from services.common.openapi import (
    CHAIN_WRITE,
    REQUEST_CHECKS,
    install_openapi,
    known_query_parameters,
    raises,
    refuse_nul_characters,
    route_answers,
)
from services.identity.errors import ChallengeUsed, UnknownDid
from services.identity.service.dids import parse_did
from tests._raises import Walk, _calls_of, _walk

ERROR_MODEL = {"$ref": "#/components/schemas/ErrorOut"}
# Statuses an operation answers as a result rather than raises: DID resolution's own outcomes
ANSWERED = {("GET", "/1.0/identifiers/{did}"): {400, 404, 410}}


def _no_session() -> Iterator[Any]:
    yield None


def _routers() -> Iterator[tuple[str, APIRouter]]:
    """Each service's router, bound to a runtime that is never used (nothing is called)."""
    from services.credit.api import build_router as credit
    from services.credit.runtime import Runtime as CreditRuntime
    from services.identity.api import build_router as identity
    from services.identity.runtime import Runtime as IdentityRuntime
    from services.roadhealth.api import build_router as roadhealth
    from services.roadhealth.runtime import Runtime as RoadRuntime

    yield (
        "identity",
        identity(
            object.__new__(IdentityRuntime),
            authenticator(None, "identity"),  # type: ignore[arg-type]
            _no_session,  # type: ignore[arg-type]
        ),
    )
    yield (
        "credit",
        credit(
            object.__new__(CreditRuntime),
            authenticate=authenticator(None, "credit"),  # type: ignore[arg-type]
            get_session=_no_session,
        ),
    )
    yield (
        "roadhealth",
        roadhealth(
            object.__new__(RoadRuntime),
            authenticator(None, "roadhealth"),  # type: ignore[arg-type]
            _no_session,  # type: ignore[arg-type]
        ),
    )


def _document(name: str, router: APIRouter) -> dict[str, Any]:
    app = FastAPI()
    install_openapi(app, audience=name)
    app.include_router(router)
    return app.openapi()


def raised_statuses(route: APIRoute) -> set[int]:
    """The statuses the route's own code can raise (its dependencies' are route_answers')."""
    walk = Walk()
    for call in _calls_of(route):
        if call in (known_query_parameters, refuse_nul_characters):
            continue
        if getattr(call, "__module__", "") == "services.common.auth":
            continue
        _walk(call, None, walk, root=True)
    statuses: set[int] = set()
    for error in walk.raised:
        if issubclass(error, ServiceError) and (error.status < 500 or error.status == 503):
            statuses.add(error.status)
        elif issubclass(error, TxRejected):  # the chain's door, as a service renders it
            statuses |= {answer.status for answer in CHAIN_WRITE}
        elif issubclass(error, AuthError):  # a role checked inside the domain
            statuses.add(403)
    return statuses


def mismatches(name: str, router: APIRouter) -> list[str]:
    """Each operation whose declared error statuses differ from what its code can answer."""
    paths = _document(name, router)["paths"]
    found = []
    for route in [r for r in router.routes if isinstance(r, APIRoute)]:
        for method in sorted(route.methods or ()):
            operation = paths[route.path_format][method.lower()]
            declared = {int(s) for s in operation["responses"] if int(s) >= 400}
            possible = set(route_answers(route)) | raised_statuses(route)
            possible |= ANSWERED.get((method, route.path_format), set())
            if declared != possible:
                found.append(
                    f"{name} {method} {route.path_format}: declared but impossible"
                    f" {sorted(declared - possible)}, possible but undeclared"
                    f" {sorted(possible - declared)}"
                )
    return found


SERVICES = dict(_routers())


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_operation_declares_what_its_code_can_answer(name: str) -> None:
    assert mismatches(name, SERVICES[name]) == []


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_error_status_has_the_error_model_and_says_when(name: str) -> None:
    document = _document(name, SERVICES[name])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            where = (method, path)
            # 405 is an answer about a path, not an operation; a request schema to break needs
            # parameters or a body (a GET can still answer 422 for what its domain refuses)
            assert "405" not in responses, where
            invalid = "`invalid_request`" in responses.get("422", {}).get("description", "")
            assert invalid <= (bool(operation.get("parameters")) or "requestBody" in operation)
            assert bool(operation.get("parameters")) <= invalid, where
            # Every operation authenticates, and so resolves the caller's key on the chain
            assert {"400", "401", "503"} <= set(responses), where
            answered = ANSWERED.get((method.upper(), path), set())
            for status in [s for s in responses if int(s) >= 400]:
                assert "`" in responses[status]["description"], (where, status)
                if int(status) in answered:
                    continue
                content = responses[status]["content"]
                assert any(c.get("schema") == ERROR_MODEL for c in content.values()), where


def test_the_check_flags_impossible_and_undeclared_statuses() -> None:
    router = APIRouter(dependencies=REQUEST_CHECKS)

    @router.get("/declares-too-much/{did}", responses=raises(UnknownDid, ChallengeUsed))
    def too_much(did: str) -> None:
        parse_did(did)

    @router.get("/declares-too-little")
    def too_little(q: str = Query("x")) -> None:
        parse_did(q)

    @router.get("/declares-what-it-raises/{did}", responses=raises(UnknownDid))
    def right(did: str) -> None:
        parse_did(did)

    found = mismatches("identity", router)
    assert len(found) == 2
    assert "declares-too-much/{did}: declared but impossible [409]" in found[0]
    assert (
        "declares-too-little: declared but impossible [], possible but undeclared [404]"
        in (found[1])
    )


def test_a_405_names_every_method_of_the_path_in_allow() -> None:
    # With the router's routes inside FastAPI's include contexts, Allow came back empty
    from fastapi.testclient import TestClient

    from services.common.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)
    install_openapi(app, audience="identity")
    app.include_router(SERVICES["identity"])
    client = TestClient(app)
    # /credentials/batch is its own path item, though /credentials/{credential_id} matches it
    cases = [
        ("/dids/did:smartcity:x", "DELETE, GET"),
        ("/types", "POST"),
        ("/credentials/batch", "POST"),
    ]
    for path, allowed in cases:
        answer = client.patch(path)
        assert answer.status_code == 405, path
        assert answer.headers["allow"] == allowed, path
        assert answer.json()["error"]["code"] == "method_not_allowed"
