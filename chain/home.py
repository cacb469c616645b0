"""On-disk layout of a suite: genesis, organisations' keys, and one home per node.

DIR/genesis.json
DIR/suite.json                      where the running suite's API is
DIR/orgs/<org>/key.jwk              an organisation's signing key (0600)
DIR/nodes/<name>/node.json          a node's settings
DIR/nodes/<name>/node_key.jwk       its validator or observer key (0600)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chain.contracts.framework import code_hash, load_contract
from chain.errors import ChainError, GenesisError
from chain.genesis import Genesis, load_genesis, parse_genesis
from chain.suites import DEFAULT_SUITE, SuiteKey, load_any_key, suite_for

BASE_API_PORT = 8100
BASE_P2P_PORT = 26600


@dataclass(frozen=True)
class Organisation:
    """An organisation a new chain's genesis registers; `init_suite` makes its signing key."""

    id: str
    name: str
    roles: tuple[str, ...]


class PeerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    pub_key: str
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class NodeSettings(BaseModel):
    """A node's settings file (node.json)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: str = Field(pattern="^(validator|observer)$")
    genesis: str = "../../genesis.json"
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=BASE_API_PORT, ge=1, le=65535)
    block_interval_ms: int = Field(default=20, ge=0, le=60_000)
    # Back-pressure: pending transactions beyond this are refused with 429 + Retry-After
    mempool_capacity: int = Field(default=20_000, ge=1, le=1_000_000)
    # The door admits while the pending backlog is under this many seconds of the commit rate
    # the node has shown while busy: less trades saturated throughput for latency (0.5 s: under
    # half the p99 at saturation for about 5 % less throughput, docs/operations.md)
    backlog_target_s: float = Field(default=2.0, ge=0.05, le=60, allow_inf_nan=False, strict=True)
    public_reads: bool = False
    p2p_host: str = "127.0.0.1"
    p2p_port: int = Field(default=BASE_P2P_PORT, ge=1, le=65535)
    # Links to peers are TLS 1.3 by node keys; true speaks unencrypted TCP instead, which
    # every node of the chain must then do too: a laptop demo on loopback only
    p2p_plaintext: bool = False
    peers: list[PeerSettings] = Field(default_factory=list)


@dataclass(frozen=True)
class NodeHome:
    path: Path
    settings: NodeSettings

    @property
    def genesis_path(self) -> Path:
        return (self.path / self.settings.genesis).resolve()

    @property
    def database_url(self) -> str:
        # Imported here: chain.db loads SQLAlchemy, which `smartcity token` (a key and a
        # genesis read from the home) does not need
        from chain.db import sqlite_url

        return self.settings.database_url or sqlite_url(self.path / "chain.db")

    def key(self) -> SuiteKey:
        return load_any_key(self.path / "node_key.jwk")

    def genesis(self) -> Genesis:
        return load_genesis(self.genesis_path)


def load_node_home(path: Path) -> NodeHome:
    config = path / "node.json"
    if not config.is_file():
        raise ChainError(
            f"{path} is not a node home (no node.json); create one with `smartcity init`"
        )
    try:
        settings = NodeSettings.model_validate_json(config.read_text())
    except ValidationError as exc:
        # The field by its path (peers.0.port), not a tuple's repr; never the value, which for
        # database_url may hold a password
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise ChainError(f"{config}: {where}: {first['msg']}") from exc
    return NodeHome(path, settings)


def init_suite(
    out: Path,
    *,
    organisations: Sequence[Organisation] = (),
    validators: int = 1,
    observers: int = 0,
    chain_id: str = "smartcity-demo",
    api_url: str = "http://127.0.0.1:8000/chain",
    contracts: Sequence[tuple[str, str]] = (),
    container_network: bool = False,
    p2p_plaintext: bool = False,
    crypto: str = DEFAULT_SUITE,
) -> Genesis:
    """Create keys, genesis and node homes for a new chain that registers `organisations`, every
    key of the `crypto` suite (chain.suites). The suite's demo city is `smartcity.demo`."""
    if p2p_plaintext and container_network:
        raise ChainError("plaintext node links are for one machine, not a container network")
    if (out / "genesis.json").exists():
        raise ChainError(
            f"{out} already holds a chain (genesis.json exists); choose another folder"
        )
    if not 1 <= validators <= 100 or not 0 <= observers <= 100:
        raise ChainError("use 1..100 validators and 0..100 observers")
    suite = suite_for(crypto)  # SuiteUnavailable (a ChainError) names the known suites
    out.mkdir(parents=True, exist_ok=True)
    nodes = [("validator", i) for i in range(validators)] + [
        ("observer", i) for i in range(observers)
    ]
    node_keys: dict[str, SuiteKey] = {}
    for role, i in nodes:
        node_keys[f"{role}-{i}"] = suite.generate()
    names = list(node_keys)
    for index, name in enumerate(names):
        key = node_keys[name]
        home = out / "nodes" / name
        suite.save_key(key, home / "node_key.jwk")
        # On one host every node has its own ports; in containers every node is its own host
        # (named after the node), listening on all interfaces with the same ports.
        peers = [
            PeerSettings(
                name=other,
                pub_key=node_keys[other].public_hex,
                host=other if container_network else "127.0.0.1",
                port=BASE_P2P_PORT if container_network else BASE_P2P_PORT + k,
            )
            for k, other in enumerate(names)
            if other != name
        ]
        settings = NodeSettings(
            name=name,
            role=name.split("-")[0],
            host="0.0.0.0" if container_network else "127.0.0.1",
            port=BASE_API_PORT if container_network else BASE_API_PORT + index,
            p2p_host="0.0.0.0" if container_network else "127.0.0.1",
            p2p_port=BASE_P2P_PORT if container_network else BASE_P2P_PORT + index,
            p2p_plaintext=p2p_plaintext,
            peers=peers if len(names) > 1 else [],
        )
        (home / "node.json").write_text(
            settings.model_dump_json(indent=2, exclude_none=True) + "\n"
        )
    orgs = []
    for org in organisations:
        key = suite.generate()
        suite.save_key(key, out / "orgs" / org.id / "key.jwk")
        orgs.append(
            {"id": org.id, "name": org.name, "roles": list(org.roles), "keys": [key.public_hex]}
        )
    genesis = parse_genesis(
        {
            "chain_id": chain_id,
            "genesis_time_ms": int(time.time() * 1000),
            "validators": [
                {"name": n, "pub_key": k.public_hex, "power": 1}
                for n, k in node_keys.items()
                if n.startswith("validator")
            ],
            "observers": [
                {"name": n, "pub_key": k.public_hex}
                for n, k in node_keys.items()
                if n.startswith("observer")
            ],
            "organisations": orgs,
            "contracts": [
                {"name": name, "path": path, "code_hash": code_hash(load_contract(path))}
                for name, path in contracts
            ],
            "crypto": crypto,
        }
    )
    (out / "genesis.json").write_text(json.dumps(genesis.to_json(), indent=2) + "\n")
    (out / "suite.json").write_text(
        json.dumps({"chain_id": chain_id, "api_url": api_url}, indent=2) + "\n"
    )
    return genesis


@dataclass(frozen=True)
class SuiteHome:
    """A suite folder as the CLI's client commands see it."""

    path: Path

    def genesis(self) -> Genesis:
        return load_genesis(self.path / "genesis.json")

    def api_url(self) -> str:
        suite = self.path / "suite.json"
        if not suite.is_file():
            raise GenesisError(
                f"{self.path} has no suite.json; is it a folder made by `smartcity init`?"
            )
        return str(json.loads(suite.read_text())["api_url"])

    def org_key(self, org: str) -> SuiteKey:
        path = self.path / "orgs" / org / "key.jwk"
        if not path.is_file():
            known = (
                sorted(p.name for p in (self.path / "orgs").glob("*"))
                if (self.path / "orgs").is_dir()
                else []
            )
            raise ChainError(
                f"no key for organisation {org!r} in {self.path / 'orgs'};"
                f" known: {', '.join(known) or 'none'}"
            )
        return load_any_key(path)
