"""A node's p2p port under connections that never authenticate: each waits for its handshakes
on a thread, so few may wait at once (the rest are closed as they arrive), for one deadline
counted from accept, not renewed by each byte; its validators' links carry on meanwhile.
"""

from __future__ import annotations

import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chain.block import sign_precommit
from chain.consensus.messages import Vote
from chain.consensus.tcp import MAX_PENDING_PER_HOST, Peer, TcpTransport
from chain.consensus.tls import Links, PlaintextLinks, TlsLinks
from chain.crypto import SigningKey
from chain.types import BlockHash, Height, PublicKey, Round

from ..conftest import free_port

CHAIN = "smartcity-inbound-test"
DEADLINE_S = 1.0


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[TcpTransport, int]]]:
    started: list[TcpTransport] = []

    def make(
        key: SigningKey, allowed: set[str], peers: tuple[Peer, ...] = (), plaintext: bool = False
    ) -> tuple[TcpTransport, int]:
        port = free_port()
        links: Links = PlaintextLinks() if plaintext else TlsLinks(key, allowed, allowed)
        transport = TcpTransport(
            chain_id=CHAIN,
            key=key,
            listen=("127.0.0.1", port),
            peers=list(peers),
            allowed=allowed,
            links=links,
            handshake_deadline_s=DEADLINE_S,
        )
        transport.start()
        started.append(transport)
        return transport, port

    yield make
    for transport in started:
        transport.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end closed `sock` (it reads as end of stream, or a reset)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def _vote(key: SigningKey) -> Vote:
    block_hash = BlockHash("cd" * 32)
    signed = sign_precommit(key, chain_id=CHAIN, height=3, round_=0, block_hash=block_hash)
    return Vote("precommit", Height(3), Round(0), block_hash, PublicKey(key.public_hex), signed.sig)


def test_idle_connections_get_few_threads_and_the_validators_keep_talking(
    start: Callable[..., tuple[TcpTransport, int]],
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    allowed = {a.public_hex, b.public_hex}
    node_b, port = start(b, allowed)
    received: queue.Queue[tuple[str, Any, str]] = queue.Queue()
    node_b.handler = lambda kind, payload, sender: received.put((kind, payload, sender))
    node_a, _ = start(a, allowed, (Peer(b.public_hex, "127.0.0.1", port),))
    wait_until(lambda: a.public_hex in node_b.connected)
    threads_before = threading.active_count()

    idle = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(100)]
    try:
        # Verify all but the few allowed to wait are closed as they arrive, with no thread each
        wait_until(lambda: sum(map(closed_by_peer, idle)) >= 100 - MAX_PENDING_PER_HOST, 2)
        assert threading.active_count() <= threads_before + MAX_PENDING_PER_HOST
        # Verify the validator's link still carries its votes
        node_a.broadcast(_vote(a))
        kind, vote, sender = received.get(timeout=2)
        assert (kind, sender, vote.validator) == ("message", a.public_hex, a.public_hex)
        # Verify the waiting ones are cut at the deadline and their threads end
        wait_until(lambda: all(map(closed_by_peer, idle)), timeout_s=DEADLINE_S + 2)
        wait_until(lambda: threading.active_count() <= threads_before, timeout_s=2)
        assert a.public_hex in node_b.connected
    finally:
        for sock in idle:
            sock.close()
    # Verify the transport keeps no record of the ended connections' threads: its accept loop,
    # A's link and the one spawned now are all
    node_b._spawn(lambda: None, "p2p-test")
    assert len(node_b._threads) <= 3


def test_a_slow_sender_is_dropped_at_the_handshake_deadline_however_often_it_sends(
    start: Callable[..., tuple[TcpTransport, int]],
) -> None:
    b = SigningKey.generate()
    _, port = start(b, {b.public_hex}, plaintext=True)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as slow:
        slow.sendall(b"\x00\x00\x04\x00")  # a hello frame of 1,024 bytes is coming...
        opened = time.monotonic()
        while not closed_by_peer(slow):  # ...one byte at a time, each well within a read's 5 s
            assert time.monotonic() - opened < DEADLINE_S + 2.5, "never dropped"
            try:
                slow.sendall(b"\xa0")
            except OSError:  # closed (a reset) as this byte went out
                break
            time.sleep(0.1)
        dropped_after_s = time.monotonic() - opened
    assert dropped_after_s >= DEADLINE_S - 0.1
