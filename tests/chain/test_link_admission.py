"""Node links follow the live node set: a key governance removes loses its open links, is
neither accepted nor dialled while out, and links again once added back.

Real TcpTransports over TLS on loopback, each with a live set the test changes as a committed
block would (chain.server.NodeKeys reads the ledger's validators; tests/chain/test_cluster.py
checks that a removal by governance leaves it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from chain.consensus.tcp import Peer, TcpTransport
from chain.consensus.tls import LinkRefused, TlsLinks
from chain.crypto import SigningKey

from ..conftest import free_port

CHAIN = "smartcity-admission-test"


@pytest.fixture
def transports() -> Iterator[list[TcpTransport]]:
    started: list[TcpTransport] = []
    yield started
    for transport in started:
        transport.stop()


def start(
    started: list[TcpTransport],
    key: SigningKey,
    allowed: set[str],
    peers: tuple[Peer, ...] = (),
) -> tuple[TcpTransport, int]:
    port = free_port()
    transport = TcpTransport(
        chain_id=CHAIN,
        key=key,
        listen=("127.0.0.1", port),
        peers=list(peers),
        allowed=allowed,
        links=TlsLinks(key, allowed, allowed),
    )
    transport.start()
    started.append(transport)
    return transport, port


def wait_until(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def stays_false(condition: Callable[[], bool], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if condition():
            return False
        time.sleep(0.02)
    return True


def test_a_removed_dialer_loses_its_open_link_and_links_again_once_added_back(
    transports: list[TcpTransport],
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    live_b = {a.public_hex, b.public_hex}
    node_b, port = start(transports, b, live_b)
    start(transports, a, {a.public_hex, b.public_hex}, (Peer(b.public_hex, "127.0.0.1", port),))
    wait_until(lambda: a.public_hex in node_b.connected)
    live_b.discard(a.public_hex)  # a committed block removes A: B closes the link A opened
    wait_until(lambda: a.public_hex not in node_b.connected, timeout_s=2)
    assert stays_false(lambda: a.public_hex in node_b.connected, wait_s=0.8)  # A redials: refused
    live_b.add(a.public_hex)  # added back: admitted at its next dial
    wait_until(lambda: a.public_hex in node_b.connected)


def test_a_dialer_drops_its_link_to_a_removed_listener_and_redials_it_once_added_back(
    transports: list[TcpTransport],
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    node_b, port = start(transports, b, {a.public_hex, b.public_hex})
    live_a = {a.public_hex, b.public_hex}
    start(transports, a, live_a, (Peer(b.public_hex, "127.0.0.1", port),))
    wait_until(lambda: a.public_hex in node_b.connected)
    live_a.discard(b.public_hex)  # A's chain removed B: A stops sending to B and does not redial
    wait_until(lambda: a.public_hex not in node_b.connected, timeout_s=2)
    assert stays_false(lambda: a.public_hex in node_b.connected, wait_s=0.8)
    live_a.add(b.public_hex)
    wait_until(lambda: a.public_hex in node_b.connected)


def test_the_tls_dial_refuses_a_listener_outside_the_live_set(
    transports: list[TcpTransport],
) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    _, port = start(transports, b, {a.public_hex, b.public_hex})
    # A still trusts B's certificate (anchors stay until restart) but B is out of A's set
    links = TlsLinks(a, {a.public_hex}, {a.public_hex, b.public_hex})
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(LinkRefused, match=f"key {b.public_hex[:16]} is not a node of this chain"),
    ):
        links.dial(raw, b.public_hex)
