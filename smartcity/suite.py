"""The embedded suite: one process serving the chain and every registered service."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from chain.db import sqlite_url
from chain.home import SuiteHome, init_suite, load_node_home
from chain.node import Node
from chain.server import open_node
from services.common.context import ServiceContext
from services.common.ledger import EmbeddedLedger
from smartcity.registry import SERVICES, ServiceEntry

log = logging.getLogger(__name__)
OPERATOR_ORG = "bsn-operator"


@dataclass
class Suite:
    app: FastAPI
    node: Node
    data: Path
    created: bool
    services: dict[str, FastAPI] = field(default_factory=dict)


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def service_database_url(data: Path, name: str) -> str:
    """The service's database: the shared PostgreSQL if configured, else its own SQLite file."""
    return os.environ.get("SMARTCITY_DATABASE_URL") or sqlite_url(data / f"{name}.db")


def open_suite(
    data: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    database_url: str | None = None,
    services: list[ServiceEntry] | None = None,
) -> Suite:
    """Initialise `data` on first run, open its validator, and mount the chain and services."""
    entries = SERVICES if services is None else services
    created = not (data / "genesis.json").exists()
    if created:
        init_suite(
            data,
            validators=1,
            api_url=f"http://{host}:{port}/chain",
            contracts=[(e.name, e.contract) for e in entries if e.contract],
        )
    running = open_node(load_node_home(data / "nodes" / "validator-0"), database_url=database_url)
    app = FastAPI(title="smartcity suite", version="1")
    app.mount("/chain", running.app)
    suite = Suite(app=app, node=running.node, data=data, created=created)
    operator_key = SuiteHome(data).org_key(OPERATOR_ORG)
    for entry in entries:
        context = ServiceContext(
            name=entry.name,
            ledger=EmbeddedLedger(running.node),
            database_url=database_url or service_database_url(data, entry.name),
            data_dir=data,
            operator_org=OPERATOR_ORG,
            operator_key=operator_key,
        )
        factory: Callable[[ServiceContext], FastAPI] = _import(entry.app)
        service = factory(context)
        suite.services[entry.name] = service
        app.mount(f"/{entry.name}", service)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/chain/docs")

    app.router.on_startup.append(running.node.start)
    app.router.on_shutdown.append(running.node.stop)
    return suite
