"""The application services the suite mounts, and their on-chain contracts.

Each entry names the service (its URL prefix and token audience), its app factory
`create_app(ctx: ServiceContext) -> FastAPI`, and its contract class registered in genesis by
code hash. A service joins the suite by being listed here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    app: str  # "package.module:create_app"
    contract: str | None  # "package.module:Class", registered in genesis


SERVICES: list[ServiceEntry] = [
    ServiceEntry(
        "identity",
        "services.identity.app:create_app",
        "services.identity.contract:IdentityContract",
    ),
    ServiceEntry(
        "credit", "services.credit.app:create_app", "services.credit.contract:CreditContract"
    ),
    ServiceEntry(
        "roadhealth",
        "services.roadhealth.app:create_app",
        "services.roadhealth.contract:RoadHealthContract",
    ),
]
