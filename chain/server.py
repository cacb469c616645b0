"""Assemble a node from its home and serve its API; with peers, it runs consensus over TLS links."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from chain import zip215
from chain.api import create_app
from chain.db import make_engine
from chain.errors import ChainError
from chain.home import NodeHome
from chain.ledger import Ledger
from chain.node import Node, options_for
from chain.observability import NodeCollector, instrument, node_checks
from chain.store import BlockStore
from chain.suites import DEFAULT_SUITE

if TYPE_CHECKING:
    from chain.consensus.tls import Links

log = logging.getLogger(__name__)


@dataclass
class RunningNode:
    node: Node
    app: FastAPI
    starters: list[Callable[[], None]] = field(default_factory=list)
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        for start in self.starters:
            start()

    def stop(self) -> None:
        for stop in self.stoppers:
            stop()


def open_node(home: NodeHome, *, database_url: str | None = None) -> RunningNode:
    """Open (or create) a node's store, recover its ledger, connect its peers, build its API."""
    genesis = home.genesis()
    if genesis.crypto == DEFAULT_SUITE and not zip215.batches_in_c:  # Ed25519
        log.warning(
            "Ed25519 batch checks are not built (smartcity_native._ed25519): signatures are"
            " checked one at a time, and each forged one costs milliseconds of Python; install"
            " a C compiler and OpenSSL's headers, then `make install`, before taking untrusted"
            " load"
        )
    store = BlockStore(make_engine(database_url or home.database_url))
    ledger = Ledger(genesis, store)
    node_key = home.key()
    key = node_key if home.settings.role == "validator" else None
    node = Node(ledger, key=key, options=options_for(home))
    running = RunningNode(node, create_app(node, public_reads=home.settings.public_reads))
    # /metrics, /healthz and /readyz (chain.observability), the node labelled by its name
    instrument(
        running.app,
        process="node",
        checks=node_checks(node),
        collectors=[NodeCollector(lambda: {home.settings.name: node})],
    )
    if home.settings.peers:
        transport = _connect(home, node, node_key)
        running.starters.append(transport.start)
        running.stoppers.append(transport.stop)
    running.starters.append(node.start)
    running.stoppers.insert(0, node.stop)
    running.app.router.on_startup.append(running.start)
    running.app.router.on_shutdown.append(running.stop)
    return running


class NodeKeys:
    """Keys admitted at the transport: the live validator set (the genesis's, as the committed
    blocks' governance changed it) and the genesis observers. A genesis validator that governance
    removed is no longer admitted, and one added back is admitted again."""

    def __init__(self, node: Node) -> None:
        self._observers = frozenset(o.pub_key for o in node.ledger.genesis.observers)
        self._ledger = node.ledger

    def __contains__(self, key: object) -> bool:
        if key in self._observers:
            return True
        return any(v["pub_key"] == key for v in self._ledger.validators())

    def __iter__(self) -> Iterator[str]:
        yield from self._observers
        yield from (str(v["pub_key"]) for v in self._ledger.validators())


def _links(home: NodeHome, node_key: Any, allowed: NodeKeys, suite: str) -> Links:
    """TLS 1.3 by node keys (SM2 node keys: by link keys they sign), or plaintext where the
    settings allow it (loopback only)."""
    from chain.consensus.tls import BoundTlsLinks, PlaintextLinks, TlsLinks

    if not home.settings.p2p_plaintext:
        return BoundTlsLinks() if suite == "sm2-sm3" else TlsLinks(node_key, allowed, allowed)
    hosts = [home.settings.p2p_host, *(p.host for p in home.settings.peers)]
    if not all(_is_loopback(h) for h in hosts):
        raise ChainError(
            f"{home.path / 'node.json'}: p2p_plaintext is for a demo on one machine; its"
            " p2p_host and peers must be loopback addresses (or set p2p_plaintext false)"
        )
    log.warning("node links are plaintext (p2p_plaintext): for a demo on one machine only")
    return PlaintextLinks()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect(home: NodeHome, node: Node, node_key: Any) -> Any:
    """Attach a consensus engine speaking to the home's peers over TLS (or demo plaintext)."""
    from chain.consensus.engine import Engine
    from chain.consensus.tcp import Peer, TcpTransport

    genesis = node.ledger.genesis
    allowed = NodeKeys(node)
    transport = TcpTransport(
        chain_id=genesis.chain_id,
        key=node_key,
        listen=(home.settings.p2p_host, home.settings.p2p_port),
        peers=[Peer(p.pub_key, p.host, p.port) for p in home.settings.peers],
        allowed=allowed,
        links=_links(home, node_key, allowed, genesis.crypto),
        verify=node.ledger.trees.verify,
    )
    engine = Engine(node, transport)

    def handle(kind: str, payload: Any, sender: str) -> None:
        if kind == "message":
            engine.deliver(payload, sender)
        elif kind == "txs":
            engine.deliver_txs(payload)
        elif kind == "tx_request":
            transport.send_txs(sender, engine.serve_txs(payload))
        elif kind == "tx_reply":
            engine.deliver_fetched(payload)
        elif kind == "sync_request":
            transport.send_commits(sender, engine.serve_sync(payload))
        elif kind == "commits":
            engine.deliver_commits(payload)

    transport.handler = handle
    node.engine = engine
    return transport
