"""Authenticated TCP between nodes: each peer proves it holds a node key, then JSON frames.

Handshake (both sides sign the other's fresh nonce, bound to the chain id):
    dialer   -> {"type": "hello", "chain_id", "pub_key", "nonce"}
    listener -> {"type": "challenge", "pub_key", "nonce", "sig": sign(tag | dialer nonce)}
    dialer   -> {"type": "auth", "sig": sign(tag | listener nonce)}
Only node keys are accepted (`allowed`: the genesis validators and observers, and validators
added by governance since); a dialer also checks that the listener is the peer it meant to
reach. Frames are a 4-byte big-endian length and UTF-8 JSON.
Each node sends on the connections it dials and receives on those it accepts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from chain.consensus.messages import Message
from chain.consensus.wire import (
    commit_from_json,
    commit_to_json,
    message_from_json,
    message_to_json,
)
from chain.crypto import SigningKey, verify
from chain.encoding import canonical
from chain.errors import ChainError, EncodingError
from chain.tx import Tx, tx_from_json

log = logging.getLogger(__name__)
MAX_FRAME = 64 * 1024 * 1024
HANDSHAKE_TAG = b"smartcity/p2p/v1\n"


@dataclass(frozen=True)
class Peer:
    pub_key: str
    host: str
    port: int


def _send_frame(sock: socket.socket, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def _recv_frame(sock: socket.socket) -> dict[str, Any]:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    body = json.loads(_recv_exact(sock, size))
    if not isinstance(body, dict):
        raise ConnectionError("a frame is a JSON object")
    return body


def _challenge_bytes(chain_id: str, nonce: str) -> bytes:
    return HANDSHAKE_TAG + canonical({"chain_id": chain_id, "nonce": nonce})


class TcpTransport:
    """The engine's transport over TCP; `handler` receives (kind, payload, sender) from peers."""

    def __init__(
        self,
        *,
        chain_id: str,
        key: SigningKey,
        listen: tuple[str, int],
        peers: list[Peer],
        allowed: Container[str],
        handler: Callable[[str, Any, str], None] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.key = key
        self.listen = listen
        self.peers = {p.pub_key: p for p in peers if p.pub_key != key.public_hex}
        self.allowed = allowed
        self.handler = handler
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {
            k: queue.Queue(maxsize=20_000) for k in self.peers
        }
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.connected: set[str] = set()  # peers whose authenticated inbound session is open

    # -- the engine's Transport ----------------------------------------------------------

    def broadcast(self, message: Message) -> None:
        body = {"kind": "consensus", "message": message_to_json(message)}
        for pub in self.peers:
            self._enqueue(pub, body)

    def broadcast_txs(self, txs: list[Tx]) -> None:
        body = {"kind": "txs", "txs": [t.to_json() for t in txs]}
        for pub in self.peers:
            self._enqueue(pub, body)

    def request_sync(self, peer: str, height: int) -> None:
        if peer in self.peers:
            self._enqueue(peer, {"kind": "sync_request", "height": height})

    def send_commits(self, peer: str, commits: list[Any]) -> None:
        if peer in self.peers:
            self._enqueue(
                peer, {"kind": "sync_reply", "commits": [commit_to_json(c) for c in commits]}
            )

    def _enqueue(self, pub: str, body: dict[str, Any]) -> None:
        box = self._queues[pub]
        try:
            box.put_nowait(body)
        except queue.Full:  # a peer that is down: drop the oldest, gossip re-sends what matters
            with contextlib.suppress(queue.Empty):
                box.get_nowait()
            box.put_nowait(body)

    # -- life -----------------------------------------------------------------------------

    def start(self) -> None:
        server = socket.create_server(self.listen, reuse_port=False)
        server.settimeout(0.5)
        self._server = server
        self._spawn(self._accept_loop, "p2p-accept")
        for pub in self.peers:
            self._spawn(functools.partial(self._dial_loop, pub), f"p2p-dial-{pub[:8]}")

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- outbound: dial, prove who we are, then send --------------------------------------

    def _dial_loop(self, pub: str) -> None:
        peer = self.peers[pub]
        while not self._stop.is_set():
            try:
                with socket.create_connection((peer.host, peer.port), timeout=2) as sock:
                    sock.settimeout(5)
                    self._dial_handshake(sock, pub)
                    sock.settimeout(None)
                    log.info("connected to peer %s at %s:%s", pub[:16], peer.host, peer.port)
                    self._send_loop(sock, pub)
            except (OSError, ConnectionError, ValueError, ChainError) as exc:
                log.debug("peer %s unreachable: %s", pub[:16], exc)
            self._stop.wait(0.5)

    def _dial_handshake(self, sock: socket.socket, pub: str) -> None:
        nonce = secrets.token_hex(16)
        _send_frame(
            sock,
            {
                "type": "hello",
                "chain_id": self.chain_id,
                "pub_key": self.key.public_hex,
                "nonce": nonce,
            },
        )
        reply = _recv_frame(sock)
        # Verify the listener is the peer we dialled and proves it holds that key
        if reply.get("type") != "challenge" or reply.get("pub_key") != pub:
            raise ConnectionError("the listener is not the expected peer")
        if not verify(
            pub, _challenge_bytes(self.chain_id, nonce), bytes.fromhex(str(reply.get("sig", "")))
        ):
            raise ConnectionError("the listener failed to prove its key")
        sig = self.key.sign(_challenge_bytes(self.chain_id, str(reply["nonce"]))).hex()
        _send_frame(sock, {"type": "auth", "sig": sig})

    def _send_loop(self, sock: socket.socket, pub: str) -> None:
        box = self._queues[pub]
        while not self._stop.is_set():
            try:
                body = box.get(timeout=0.5)
            except queue.Empty:
                _send_frame(sock, {"kind": "ping"})
                continue
            _send_frame(sock, body)

    # -- inbound: accept only node keys, then receive ------------------------------------

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            self._spawn(functools.partial(self._serve, sock), "p2p-in")

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            try:
                sock.settimeout(5)
                sender = self._accept_handshake(sock)
                sock.settimeout(None)
                self.connected.add(sender)
                try:
                    while not self._stop.is_set():
                        self._receive(_recv_frame(sock), sender)
                finally:
                    self.connected.discard(sender)
            except (OSError, ConnectionError, ValueError, ChainError) as exc:
                log.debug("inbound connection closed: %s", exc)

    def _accept_handshake(self, sock: socket.socket) -> str:
        hello = _recv_frame(sock)
        pub = str(hello.get("pub_key", ""))
        # Verify the dialer names this chain and a key of one of its nodes
        if hello.get("type") != "hello" or hello.get("chain_id") != self.chain_id:
            raise ConnectionError("hello for another chain")
        if pub not in self.allowed:
            raise ConnectionError(f"key {pub[:16]} is not a node of this chain")
        nonce = secrets.token_hex(16)
        sig = self.key.sign(_challenge_bytes(self.chain_id, str(hello.get("nonce", "")))).hex()
        _send_frame(
            sock, {"type": "challenge", "pub_key": self.key.public_hex, "nonce": nonce, "sig": sig}
        )
        auth = _recv_frame(sock)
        if not verify(
            pub, _challenge_bytes(self.chain_id, nonce), bytes.fromhex(str(auth.get("sig", "")))
        ):
            raise ConnectionError(f"peer {pub[:16]} failed to prove its key")
        return pub

    def _receive(self, body: dict[str, Any], sender: str) -> None:
        kind = body.get("kind")
        if kind == "ping" or self.handler is None:
            return
        try:
            if kind == "consensus":
                self.handler("message", message_from_json(body["message"]), sender)
            elif kind == "txs":
                self.handler("txs", [tx_from_json(t) for t in body["txs"]], sender)
            elif kind == "sync_request":
                self.handler("sync_request", int(body["height"]), sender)
            elif kind == "sync_reply":
                self.handler("commits", [commit_from_json(c) for c in body["commits"]], sender)
        except (EncodingError, ChainError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropping a malformed %s frame from %s: %s", kind, sender[:16], exc)
