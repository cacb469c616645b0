"""What `smartcity.suite.open_suite` composes: one app over the chain's nodes and the services.

Its own module so that what the suite mounts on it (`smartcity.ops`, `smartcity.dashboard`)
names its type without importing the module that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from chain.cluster import Cluster
from chain.node import Node


@dataclass
class Suite:
    app: FastAPI
    cluster: Cluster
    data: Path
    created: bool
    services: dict[str, FastAPI] = field(default_factory=dict)

    @property
    def node(self) -> Node:
        """The validator the services and the /chain API use."""
        return self.cluster.nodes["validator-0"]
