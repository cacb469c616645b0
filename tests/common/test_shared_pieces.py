"""What the three services share lives once in services.common, and each uses it the same way."""

# No `from __future__ import annotations`: FastAPI must see the route's Annotated alias itself.
import importlib
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from chain.auth import Caller
from services.common import errors as common_errors
from services.common.auth import require_role
from services.common.chain import ServiceChain
from services.common.errors import ChainRefused, Forbidden, install_error_handlers
from services.common.runtime import ServiceRuntime

SERVICES = ("identity", "credit", "roadhealth")


def _role_app() -> FastAPI:
    def authenticate(request: Request) -> Caller:
        roles = frozenset(filter(None, request.headers.get("x-roles", "").split(",")))
        return Caller(org="org-1", key="ab" * 32, roles=roles)

    app = FastAPI()
    install_error_handlers(app)
    Agency = Annotated[Caller, Depends(require_role(authenticate, "agency", "regulator"))]

    @app.get("/agency-only")
    def agency_only(caller: Agency) -> dict[str, str]:
        return {"org": caller.org}

    return app


def test_require_role_admits_a_caller_holding_one_of_the_roles() -> None:
    client = TestClient(_role_app())
    assert client.get("/agency-only", headers={"x-roles": "regulator"}).json() == {"org": "org-1"}


def test_require_role_refuses_a_caller_without_the_roles_with_403() -> None:
    answer = TestClient(_role_app()).get("/agency-only", headers={"x-roles": "bank"})
    assert answer.status_code == 403
    assert "lacks role agency or regulator" in answer.json()["error"]["message"]


def test_require_role_asks_for_no_query_parameter() -> None:
    # The dependency's `caller` must resolve through Depends, not become a `?caller=` parameter
    operation = _role_app().openapi()["paths"]["/agency-only"]["get"]
    assert operation.get("parameters", []) == []


class _Ledger:
    def __init__(self) -> None:
        self.reads: list[tuple[str, str]] = []

    def read(self, namespace: str, key: str) -> Any:
        self.reads.append((namespace, key))
        return None


class _Ctx:
    def __init__(self) -> None:
        self.ledger = _Ledger()


class _Chain(ServiceChain):
    namespace = "demo"
    refusals = {"forbidden": Forbidden}


def _failed(code: str) -> dict[str, Any]:
    return {"tx": "t" * 64, "height": 9, "status": "failed", "code": code, "error": "no"}


def test_a_refusal_keeps_the_contracts_code_and_maps_named_codes() -> None:
    chain = _Chain(_Ctx())  # type: ignore[arg-type]
    mapped, other = chain.refusal(_failed("forbidden")), chain.refusal(_failed("odd"))
    assert isinstance(mapped, Forbidden) and mapped.code == "forbidden"
    assert isinstance(other, ChainRefused) and (other.code, other.status) == ("odd", 409)
    assert other.details is None
    with pytest.raises(ChainRefused, match="no"):
        chain.require_ok(_failed("odd"))


def test_reads_go_to_the_services_namespace_unless_another_is_named() -> None:
    ctx = _Ctx()
    chain = _Chain(ctx)  # type: ignore[arg-type]
    chain.read("k")
    chain.read("root:x", namespace="anchors")
    assert ctx.ledger.reads == [("demo", "k"), ("anchors", "root:x")]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_its_chain_and_runtime_at_the_same_path(name: str) -> None:
    chain = importlib.import_module(f"services.{name}.chain")
    runtime = importlib.import_module(f"services.{name}.runtime")
    chains = [v for v in vars(chain).values() if _subclass(v, ServiceChain)]
    assert len(chains) == 1, chains
    assert issubclass(runtime.Runtime, ServiceRuntime)
    assert runtime.Runtime.__dataclass_fields__["chain"].type in (chains[0].__name__, chains[0])


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_raises_the_one_chain_refused(name: str) -> None:
    module = "_service_errors" if name == "credit" else "errors"
    errors = importlib.import_module(f"services.{name}.{module}")
    assert errors.ChainRefused is common_errors.ChainRefused


def test_api_modules_hold_no_copy_of_require_role() -> None:
    for name in SERVICES:
        api = importlib.import_module(f"services.{name}.api")
        assert getattr(api, "require_role", require_role) is require_role


def _subclass(value: object, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base) and value is not base
