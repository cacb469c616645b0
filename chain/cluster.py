"""Several nodes of one chain in one process: validators and observers over the local hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chain.consensus.effects import Timeouts
from chain.consensus.engine import Engine
from chain.consensus.local import LocalHub
from chain.db import make_engine
from chain.home import load_node_home
from chain.ledger import Ledger
from chain.node import Node, options_for
from chain.store import BlockStore


@dataclass
class Cluster:
    hub: LocalHub
    nodes: dict[str, Node] = field(default_factory=dict)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def validators(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.key is not None]

    def observers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.key is None]


def open_cluster(
    suite_dir: Path,
    *,
    database_urls: dict[str, str] | None = None,
    timeouts: Timeouts | None = None,
    empty_block_interval_ms: int = 5_000,
    min_block_interval_ms: int = 100,
) -> Cluster:
    """Open every node home under `suite_dir/nodes` and connect them through one local hub."""
    hub = LocalHub()
    cluster = Cluster(hub)
    for home_path in sorted((suite_dir / "nodes").iterdir()):
        home = load_node_home(home_path)
        url = (database_urls or {}).get(home.settings.name) or home.database_url
        ledger = Ledger(home.genesis(), BlockStore(make_engine(url)))
        key = home.key()
        node = Node(
            ledger,
            key=key if home.settings.role == "validator" else None,
            options=options_for(home, block_interval_ms=0),  # the engine paces the blocks
        )
        engine = Engine(
            node,
            hub.transport(key.public_hex),
            timeouts=timeouts,
            empty_block_interval_ms=empty_block_interval_ms,
            min_block_interval_ms=min_block_interval_ms,
        )
        node.engine = engine
        hub.join(key.public_hex, engine)
        cluster.nodes[home.settings.name] = node
    return cluster
