"""Links between nodes: TLS 1.3 by node keys, a handshake bound to it, then CBOR frames.

`links` opens each connection (chain.consensus.tls: TLS 1.3 whose certificates are the node
keys, or plaintext when a demo's settings allow it). Then the handshake, over the channel
(both sides sign the other's fresh nonce, bound to the chain id and the TLS channel):
    dialer   -> {"type": "hello", "chain_id", "pub_key", "nonce", "rules"}
    listener -> {"type": "challenge", "pub_key", "nonce", "rules", "sig": sign(tag | dialer nonce)}
    dialer   -> {"type": "auth", "sig": sign(tag | listener nonce)}
`rules` names the consensus rules each applies (CONSENSUS_RULES); a listener refuses a hello of
other rules with {"type": "refused", "rules"}, and a dialer a challenge or refusal of other
rules before it signs anything.
Only node keys are accepted (`allowed`: the live set, the validators as the committed blocks
left them and the genesis observers), and only the key the TLS certificate carries; a dialer
also checks that the listener is the peer it meant to reach, and dials no peer outside the
set; a link whose key leaves the set is closed within LINK_CHECK_S. An inbound connection has
HANDSHAKE_DEADLINE_S for its TLS and application handshakes together, and beyond
MAX_PENDING_INBOUND unauthenticated ones (MAX_PENDING_PER_HOST from one address) a new one is
closed at once. Frames are a 4-byte big-endian length and a CBOR map (chain.consensus.wire;
the frame kinds are in docs/protocol.md §17), unchanged inside TLS. Each node sends on the
connections it dials and receives on those it accepts. Consensus frames go out before gossip:
each peer has two send queues, and gossip, bounded, is dropped when a peer cannot keep up
(never votes, proposals or sync).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from typing import Any

from chain.consensus.messages import Message
from chain.consensus.tls import Channel, LinkRefused, Links
from chain.consensus.wire import (
    commit_from_wire,
    commit_to_wire,
    dumps,
    hashes_from_wire,
    loads,
    message_from_wire,
    message_to_wire,
    txs_from_wire,
    txs_to_wire,
)
from chain.crypto import verify
from chain.encoding import canonical
from chain.errors import ChainError, EncodingError
from chain.suites import SuiteKey
from chain.suites.base import Verifier
from chain.tx import Tx

log = logging.getLogger(__name__)
MAX_FRAME = 64 * 1024 * 1024
HANDSHAKE_TAG = b"smartcity/p2p/v3\n"  # over TLS: signs the channel binding too
PLAINTEXT_HANDSHAKE_TAG = b"smartcity/p2p/v2\n"  # over plaintext: no channel binding
CONSENSUS_QUEUE = 20_000  # frames; a peer this far behind is down, and gossip re-sends
GOSSIP_QUEUE = 64  # tx batches per peer; beyond, gossip to that peer is dropped
LINK_CHECK_S = 0.5  # how often the open links are checked against the live node set
HANDSHAKE_DEADLINE_S = 5.0  # an inbound link's TLS and application handshakes, together
MAX_PENDING_INBOUND = 32  # inbound connections not yet authenticated; beyond, refused at once
MAX_PENDING_PER_HOST = 8  # of those, from one address
# The consensus rules this release applies, stated in the handshake and signed with it. Nodes
# that apply other rules could disagree about a block (a release before Ed25519's ZIP-215 rule,
# docs/protocol.md section 14, refuses signatures this one accepts), so they refuse to link,
# saying why, instead of splitting on the first such block: all nodes upgrade together.
CONSENSUS_RULES = "ed25519-zip215"


class RulesMismatch(ConnectionError):
    """The peer applies other consensus rules than this node."""

    def __init__(self, pub: str, theirs: object) -> None:
        named = repr(theirs[:64]) if isinstance(theirs, str) else "a release before any named"
        super().__init__(
            f"peer {pub[:16]} applies other consensus rules ({named}) than this node"
            f" ({CONSENSUS_RULES}): run one release on every node"
        )


@dataclass(frozen=True)
class Peer:
    pub_key: str
    host: str
    port: int


def _frame(body: dict[str, Any]) -> bytes:
    data = dumps(body)
    return struct.pack(">I", len(data)) + data


def send_frame(sock: socket.socket, body: dict[str, Any]) -> None:
    sock.sendall(_frame(body))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket) -> dict[str, Any]:
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    try:
        return loads(_recv_exact(sock, size))
    except EncodingError as exc:
        raise ConnectionError(str(exc)) from exc


def challenge_bytes(chain_id: str, nonce: str, binding: bytes) -> bytes:
    """What each side signs over the other's nonce: bound to the consensus rules, and to the
    TLS channel when there is one."""
    signed: dict[str, str] = {"chain_id": chain_id, "nonce": nonce, "rules": CONSENSUS_RULES}
    if not binding:
        return PLAINTEXT_HANDSHAKE_TAG + canonical(signed)
    return HANDSHAKE_TAG + canonical({**signed, "tls": binding.hex()})


class TcpTransport:
    """The engine's transport over TCP; `handler` receives (kind, payload, sender) from peers."""

    def __init__(
        self,
        *,
        chain_id: str,
        key: SuiteKey,
        listen: tuple[str, int],
        peers: list[Peer],
        allowed: Container[str],
        links: Links,
        handler: Callable[[str, Any, str], None] | None = None,
        handshake_deadline_s: float = HANDSHAKE_DEADLINE_S,
        verify: Verifier = verify,  # the chain's suite's (chain.suites): SM2 on an SM chain
    ) -> None:
        self.chain_id = chain_id
        self.verify = verify
        self.links = links
        self.key = key
        self.listen = listen
        self.peers = {p.pub_key: p for p in peers if p.pub_key != key.public_hex}
        self.allowed = allowed
        self.handler = handler
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {
            k: queue.Queue(maxsize=CONSENSUS_QUEUE) for k in self.peers
        }
        self._gossip: dict[str, queue.Queue[dict[str, Any]]] = {
            k: queue.Queue(maxsize=GOSSIP_QUEUE) for k in self.peers
        }
        self._ready: dict[str, threading.Event] = {k: threading.Event() for k in self.peers}
        self.dropped_gossip = 0
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.connected: set[str] = set()  # peers whose authenticated inbound session is open
        self._links_lock = threading.Lock()
        self._open: dict[socket.socket, str] = {}  # authenticated links (both ways), by socket
        # Inbound connections still in their handshakes: a duplicate of each socket (to cut it
        # from the accept thread) with its deadline and the address it came from
        self._pending: dict[socket.socket, tuple[float, str]] = {}
        self.handshake_deadline_s = handshake_deadline_s
        self._rules_warned: set[str] = set()  # peers refused for their rules, warned of once

    # -- the engine's Transport ----------------------------------------------------------

    def broadcast(self, message: Message) -> None:
        body = {"kind": "consensus", "message": message_to_wire(message)}
        for pub in self.peers:
            self._enqueue(pub, body)

    def broadcast_txs(self, txs: list[Tx]) -> None:
        body = {"kind": "txs", "txs": txs_to_wire(txs)}
        for pub in self.peers:
            try:
                self._gossip[pub].put_nowait(body)
            except queue.Full:  # the peer is slow or down: it fetches what a proposal needs
                self.dropped_gossip += len(txs)
                continue
            self._ready[pub].set()

    def request_sync(self, peer: str, height: int) -> None:
        if peer in self.peers:
            self._enqueue(peer, {"kind": "sync_request", "height": height})

    def request_txs(self, peer: str, hashes: list[str]) -> None:
        if peer in self.peers:
            self._enqueue(
                peer, {"kind": "tx_request", "hashes": [bytes.fromhex(h) for h in hashes]}
            )

    def send_txs(self, peer: str, txs: list[Tx]) -> None:
        if peer in self.peers and txs:
            self._enqueue(peer, {"kind": "tx_reply", "txs": txs_to_wire(txs)})

    def send_commits(self, peer: str, commits: list[Any]) -> None:
        if peer in self.peers:
            self._enqueue(
                peer, {"kind": "sync_reply", "commits": [commit_to_wire(c) for c in commits]}
            )

    def _enqueue(self, pub: str, body: dict[str, Any]) -> None:
        box = self._queues[pub]
        try:
            box.put_nowait(body)
        except queue.Full:  # a peer that is down: drop the oldest, gossip re-sends what matters
            with contextlib.suppress(queue.Empty):
                box.get_nowait()
            box.put_nowait(body)
        self._ready[pub].set()

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
        with self._links_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        # start() and the accept loop both spawn: one list, pruned of ended links' threads
        with self._links_lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    # -- outbound: dial, prove who we are, then send --------------------------------------

    def _dial_loop(self, pub: str) -> None:
        peer = self.peers[pub]
        refused = ""  # why the peer last refused the link, said once per streak
        while not self._stop.is_set():
            # Verify the peer is still a node of the chain (governance may have removed it)
            if pub not in self.allowed:
                if refused != "removed":
                    refused = "removed"
                    log.warning("peer %s is not a node of this chain now: not dialled", pub[:16])
                self._stop.wait(0.5)
                continue
            try:
                with socket.create_connection((peer.host, peer.port), timeout=2) as raw:
                    raw.settimeout(5)
                    channel = self.links.dial(raw, pub)
                    with channel.sock as sock, self._tracked(sock, pub):
                        self._dial_handshake(channel, pub)
                        sock.settimeout(None)
                        link = "TLS" if self.links.encrypted else "plaintext"
                        where = f"{peer.host}:{peer.port}"
                        log.info("connected to peer %s at %s over %s", pub[:16], where, link)
                        refused = ""
                        self._send_loop(sock, pub)
            except (OSError, ConnectionError, ValueError, ChainError) as exc:
                # A peer down is routine; one refusing our key (or not the key we dialled) is
                # a configuration to fix: say so once (once for other rules, whatever the peer
                # names: it picks that text)
                seen = "rules" if isinstance(exc, RulesMismatch) else str(exc)
                if isinstance(exc, ssl.SSLError | LinkRefused | RulesMismatch) and seen != refused:
                    refused = seen
                    log.warning("peer %s refused the link: %s", pub[:16], exc)
                else:
                    log.debug("peer %s unreachable: %s", pub[:16], exc)
            self._stop.wait(0.5)

    def _dial_handshake(self, channel: Channel, pub: str) -> None:
        sock, binding = channel.sock, channel.binding
        nonce = secrets.token_hex(16)
        send_frame(
            sock,
            {
                "type": "hello",
                "chain_id": self.chain_id,
                "pub_key": self.key.public_hex,
                "nonce": nonce,
                "rules": CONSENSUS_RULES,
            },
        )
        reply = recv_frame(sock)
        # Verify the listener applies our rules (or refused us for not), is the peer we
        # dialled and proves it holds that key
        if reply.get("type") in ("challenge", "refused") and reply.get("rules") != CONSENSUS_RULES:
            raise RulesMismatch(pub, reply.get("rules"))
        if reply.get("type") != "challenge" or reply.get("pub_key") != pub:
            raise ConnectionError("the listener is not the expected peer")
        signed = challenge_bytes(self.chain_id, nonce, binding)
        if not self.verify(pub, signed, bytes.fromhex(str(reply.get("sig", "")))):
            raise ConnectionError("the listener failed to prove its key")
        challenge = reply.get("nonce")
        if not isinstance(challenge, str) or not challenge:
            # A peer leaving it out must not end this dialling thread (a KeyError was uncaught)
            raise ConnectionError("the listener's challenge carries no nonce")
        sig = self.key.sign(challenge_bytes(self.chain_id, challenge, binding)).hex()
        send_frame(sock, {"type": "auth", "sig": sig})

    def _send_loop(self, sock: socket.socket, pub: str) -> None:
        """Send consensus frames first, then one gossip frame, coalescing into few writes."""
        box, gossip, ready = self._queues[pub], self._gossip[pub], self._ready[pub]
        while not self._stop.is_set():
            ready.clear()
            out = bytearray()
            while len(out) < 1 << 20:
                try:
                    out += _frame(box.get_nowait())
                except queue.Empty:
                    break
            if not out:
                with contextlib.suppress(queue.Empty):
                    out += _frame(gossip.get_nowait())
            if out:
                sock.sendall(out)
                continue
            if not ready.wait(0.5):
                send_frame(sock, {"kind": "ping"})

    # -- inbound: accept only node keys, then receive ------------------------------------

    def _accept_loop(self) -> None:
        assert self._server is not None
        next_check = 0.0
        while not self._stop.is_set():
            try:
                sock, address = self._server.accept()
            except (TimeoutError, OSError):
                pass
            else:
                watch = self._admit(sock, str(address[0]))
                if watch is not None:
                    self._spawn(functools.partial(self._serve, sock, watch), "p2p-in")
            now = time.monotonic()
            if now >= next_check:
                next_check = now + LINK_CHECK_S
                self._close_removed()
                self._close_late(now)

    def _admit(self, sock: socket.socket, host: str) -> socket.socket | None:
        """Start the handshake deadline of a new inbound connection, or close it at once when
        too many are unauthenticated (in all, or from its address): each holds a thread."""
        with self._links_lock:
            from_host = sum(1 for _, h in self._pending.values() if h == host)
            if len(self._pending) < MAX_PENDING_INBOUND and from_host < MAX_PENDING_PER_HOST:
                try:
                    watch = sock.dup()
                except OSError:
                    watch = None
                if watch is not None:
                    self._pending[watch] = (time.monotonic() + self.handshake_deadline_s, host)
                    return watch
        log.debug("refused an inbound connection from %s: too many in their handshakes", host)
        sock.close()
        return None

    def _settled(self, watch: socket.socket) -> None:
        """The connection's handshakes ended (authenticated or not): its deadline no longer runs."""
        with self._links_lock:
            self._pending.pop(watch, None)
        watch.close()

    def _close_late(self, now: float) -> None:
        """Cut each inbound connection whose handshakes outlived their deadline (a slow
        sender resets the per-read timeout with every byte; the deadline counts from accept)."""
        with self._links_lock:
            late = [w for w, (deadline, _) in self._pending.items() if now > deadline]
            for watch in late:
                host = self._pending.pop(watch)[1]
                log.debug("closing an inbound connection from %s: handshake too slow", host)
                with contextlib.suppress(OSError):
                    watch.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def _tracked(self, sock: socket.socket, pub: str) -> Iterator[None]:
        """Hold `sock` as an open link of `pub`'s while inside (the caller closes it after)."""
        with self._links_lock:
            self._open[sock] = pub
        try:
            yield
        finally:
            with self._links_lock:
                self._open.pop(sock, None)

    def _close_removed(self) -> None:
        """Cut every open link whose peer is no longer a node of the chain (a committed block
        removed its key); its threads see the link end, and it is neither accepted nor dialled
        again unless governance adds it back."""
        with self._links_lock:
            removed = [(sock, pub) for sock, pub in self._open.items() if pub not in self.allowed]
            for sock, pub in removed:
                del self._open[sock]
                log.warning("closing the link of %s: not a node of this chain now", pub[:16])
                # The socket's own shutdown, not TLS's: the thread using it sees the link end
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _serve(self, raw: socket.socket, watch: socket.socket) -> None:
        with raw, watch:
            try:
                raw.settimeout(min(5.0, self.handshake_deadline_s))
                channel = self.links.accept(raw)
                with channel.sock as sock:
                    sender = self._accept_handshake(channel)
                    self._settled(watch)
                    sock.settimeout(None)
                    self.connected.add(sender)
                    try:
                        with self._tracked(sock, sender):
                            while not self._stop.is_set():
                                self._receive(recv_frame(sock), sender)
                    finally:
                        self.connected.discard(sender)
            except (OSError, ConnectionError, ValueError, ChainError) as exc:
                log.debug("inbound connection closed: %s", exc)
            finally:
                self._settled(watch)

    def _accept_handshake(self, channel: Channel) -> str:
        sock, binding = channel.sock, channel.binding
        hello = recv_frame(sock)
        pub = str(hello.get("pub_key", ""))
        # Verify the dialer names this chain and a key of one of its nodes
        if hello.get("type") != "hello" or hello.get("chain_id") != self.chain_id:
            raise ConnectionError("hello for another chain")
        if pub not in self.allowed:
            raise ConnectionError(f"key {pub[:16]} is not a node of this chain")
        # Verify it is the key the TLS channel authenticated
        if channel.peer_key is not None and pub != channel.peer_key:
            raise ConnectionError(f"key {pub[:16]} is not the one its TLS certificate carries")
        if hello.get("rules") != CONSENSUS_RULES:
            self._refuse_rules(sock, pub, hello.get("rules"))
        nonce = secrets.token_hex(16)
        signed = challenge_bytes(self.chain_id, str(hello.get("nonce", "")), binding)
        send_frame(
            sock,
            {
                "type": "challenge",
                "pub_key": self.key.public_hex,
                "nonce": nonce,
                "rules": CONSENSUS_RULES,
                "sig": self.key.sign(signed).hex(),
            },
        )
        auth = recv_frame(sock)
        expected = challenge_bytes(self.chain_id, nonce, binding)
        if not self.verify(pub, expected, bytes.fromhex(str(auth.get("sig", "")))):
            raise ConnectionError(f"peer {pub[:16]} failed to prove its key")
        return pub

    def _refuse_rules(self, sock: socket.socket, pub: str, theirs: object) -> None:
        """Refuse a dialer of other rules, telling it ours (a node of a later release dialling
        can say why it is refused), and warn once per peer (it redials every 0.5 s)."""
        exc = RulesMismatch(pub, theirs)
        with contextlib.suppress(OSError):
            send_frame(sock, {"type": "refused", "rules": CONSENSUS_RULES})
        if pub not in self._rules_warned:  # not again for another answer: the peer picks it
            self._rules_warned.add(pub)
            log.warning("refused a link: %s", exc)
        raise exc

    def _receive(self, body: dict[str, Any], sender: str) -> None:
        kind = body.get("kind")
        if kind == "ping" or self.handler is None:
            return
        try:
            if kind == "consensus":
                self.handler("message", message_from_wire(body["message"]), sender)
            elif kind == "txs":
                self.handler("txs", txs_from_wire(body["txs"]), sender)
            elif kind == "tx_request":
                self.handler("tx_request", hashes_from_wire(body["hashes"]), sender)
            elif kind == "tx_reply":
                self.handler("tx_reply", txs_from_wire(body["txs"]), sender)
            elif kind == "sync_request":
                self.handler("sync_request", int(body["height"]), sender)
            elif kind == "sync_reply":
                self.handler("commits", [commit_from_wire(c) for c in body["commits"]], sender)
        except (EncodingError, ChainError, KeyError, TypeError, ValueError) as exc:
            log.warning("dropping a malformed %s frame from %s: %s", kind, sender[:16], exc)
