"""The embedded suite: one process serving the chain (and, as they land, the services)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from chain.home import init_suite, load_node_home
from chain.node import Node
from chain.server import open_node

log = logging.getLogger(__name__)


@dataclass
class Suite:
    app: FastAPI
    node: Node
    data: Path
    created: bool


def open_suite(
    data: Path, *, host: str = "127.0.0.1", port: int = 8000, database_url: str | None = None
) -> Suite:
    """Initialise `data` on first run, then open its validator and mount every API."""
    created = not (data / "genesis.json").exists()
    if created:
        init_suite(data, validators=1, api_url=f"http://{host}:{port}/chain")
    running = open_node(load_node_home(data / "nodes" / "validator-0"), database_url=database_url)
    app = FastAPI(title="smartcity suite", version="1")
    app.mount("/chain", running.app)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/chain/docs")

    app.router.on_startup.append(running.node.start)
    app.router.on_shutdown.append(running.node.stop)
    return Suite(app=app, node=running.node, data=data, created=created)
