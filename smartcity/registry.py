"""The application services the suite mounts, and their on-chain contracts.

Each entry names the service (its URL prefix and token audience), a function that imports and
returns its app factory `create_app(ctx: ServiceContext) -> FastAPI`, and one that imports and
returns its contract class, registered in genesis by code hash. A service joins the suite by
being listed here. The imports happen when an entry's function is called, so reading the list
(`smartcity token`'s audiences, `smartcity service`'s choices, `--help`) loads no service, and
mypy checks each factory and class against the types below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chain.contracts.framework import Contract
    from services.common.context import ServiceContext

AppFactory = Callable[["ServiceContext"], "FastAPI"]


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    app: Callable[[], AppFactory]  # imports the service and returns its create_app
    contract: Callable[[], type[Contract]] | None  # imports and returns its contract class

    def contract_path(self) -> str | None:
        """The contract as genesis names it, "package.module:Class"; None without a contract."""
        if self.contract is None:
            return None
        cls = self.contract()
        return f"{cls.__module__}:{cls.__qualname__}"


def genesis_contracts(entries: Iterable[ServiceEntry]) -> list[tuple[str, str]]:
    """(name, "package.module:Class") of each entry's contract, as `init_suite` registers them."""
    return [(e.name, path) for e in entries if (path := e.contract_path()) is not None]


def _identity_app() -> AppFactory:
    from services.identity.app import create_app

    return create_app


def _identity_contract() -> type[Contract]:
    from services.identity.contract import IdentityContract

    return IdentityContract


def _credit_app() -> AppFactory:
    from services.credit.app import create_app

    return create_app


def _credit_contract() -> type[Contract]:
    from services.credit.contract import CreditContract

    return CreditContract


def _roadhealth_app() -> AppFactory:
    from services.roadhealth.app import create_app

    return create_app


def _roadhealth_contract() -> type[Contract]:
    from services.roadhealth.contract import RoadHealthContract

    return RoadHealthContract


IDENTITY = ServiceEntry("identity", _identity_app, _identity_contract)
CREDIT = ServiceEntry("credit", _credit_app, _credit_contract)
ROADHEALTH = ServiceEntry("roadhealth", _roadhealth_app, _roadhealth_contract)
SERVICES: list[ServiceEntry] = [IDENTITY, CREDIT, ROADHEALTH]
