"""Assemble a node from its home and serve its API."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI

from chain.api import create_app
from chain.db import make_engine
from chain.home import NodeHome
from chain.ledger import Ledger
from chain.node import Node, NodeOptions
from chain.store import BlockStore

log = logging.getLogger(__name__)


@dataclass
class RunningNode:
    node: Node
    app: FastAPI


def open_node(home: NodeHome, *, database_url: str | None = None) -> RunningNode:
    """Open (or create) a node's store, recover its ledger, and build its API."""
    genesis = home.genesis()
    store = BlockStore(make_engine(database_url or home.database_url))
    ledger = Ledger(genesis, store)
    key = home.key() if home.settings.role == "validator" else None
    node = Node(
        ledger, key=key, options=NodeOptions(block_interval_ms=home.settings.block_interval_ms)
    )
    app = create_app(node, public_reads=home.settings.public_reads)
    app.router.on_startup.append(node.start)
    app.router.on_shutdown.append(node.stop)
    return RunningNode(node, app)
