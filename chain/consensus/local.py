"""In-process transport: several nodes in one Python process exchange messages directly."""

from __future__ import annotations

from chain.consensus.engine import Engine
from chain.consensus.messages import Message
from chain.tx import Tx


class LocalHub:
    """The wires between the engines of one process, keyed by node public key."""

    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.down: set[str] = set()  # nodes cut off (tests stop a node this way)

    def transport(self, public_key: str) -> LocalTransport:
        return LocalTransport(self, public_key)

    def join(self, public_key: str, engine: Engine) -> None:
        self.engines[public_key] = engine

    def peers(self, me: str) -> list[Engine]:
        if me in self.down:
            return []
        return [e for k, e in self.engines.items() if k != me and k not in self.down]


class LocalTransport:
    def __init__(self, hub: LocalHub, public_key: str) -> None:
        self.hub = hub
        self.me = public_key

    def broadcast(self, message: Message) -> None:
        for engine in self.hub.peers(self.me):
            engine.deliver(message, sender=self.me)

    def broadcast_txs(self, txs: list[Tx]) -> None:
        for engine in self.hub.peers(self.me):
            engine.deliver_txs(txs)

    def request_txs(self, peer: str, hashes: list[str]) -> None:
        engine = self.hub.engines.get(peer)
        mine = self.hub.engines.get(self.me)
        if engine is None or mine is None or {peer, self.me} & self.hub.down:
            return
        found = engine.serve_txs(hashes)
        if found:
            mine.deliver_fetched(found)

    def request_sync(self, peer: str, height: int) -> None:
        engine = self.hub.engines.get(peer)
        mine = self.hub.engines.get(self.me)
        if engine is None or mine is None or {peer, self.me} & self.hub.down:
            return
        commits = engine.serve_sync(height)
        if commits:
            mine.deliver_commits(commits)
