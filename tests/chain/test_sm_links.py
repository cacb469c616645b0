"""Node links of an sm2-sm3 chain (issue 16): TLS 1.3 by link keys the SM2 node keys sign.

Real TcpTransports on loopback with BoundTlsLinks, one node dialling another through a relay
that keeps the bytes it forwards (tests/chain/_netproxy.py): the stream opens with a TLS
handshake and no frame's content crosses in the clear; an SM2 key that is not a node of the
chain completes TLS (anyone can) but gets no link; a relay that terminates TLS itself cannot
pass a node's handshake on.
"""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chain.block import sign_precommit
from chain.consensus.messages import Vote
from chain.consensus.tcp import (
    CONSENSUS_RULES,
    Peer,
    TcpTransport,
    challenge_bytes,
    recv_frame,
    send_frame,
)
from chain.consensus.tls import BoundTlsLinks, channel_binding
from chain.suites import SuiteKey, suite_for
from chain.tx import Tx, sign_tx
from chain.types import BlockHash, Height, PublicKey, Round

from ..conftest import free_port
from ._netproxy import NetProxy

CHAIN = "smartcity-sm-links"
SM = suite_for("sm2-sm3")
TLS_HANDSHAKE, CLIENT_HELLO, SERVER_HELLO = 0x16, 0x01, 0x02


class Node:
    def __init__(self, key: SuiteKey, port: int, transport: TcpTransport) -> None:
        self.key, self.port, self.transport = key, port, transport
        self.received: queue.Queue[tuple[str, Any, str]] = queue.Queue()
        transport.handler = lambda kind, payload, sender: self.received.put((kind, payload, sender))


@pytest.fixture
def make_node() -> Iterator[Callable[..., Node]]:
    started: list[TcpTransport] = []

    def make(key: SuiteKey, *, allowed: set[str], peers: list[Peer] | None = None) -> Node:
        port = free_port()
        transport = TcpTransport(
            chain_id=CHAIN,
            key=key,
            listen=("127.0.0.1", port),
            peers=peers or [],
            allowed=allowed,
            links=BoundTlsLinks(),
            verify=SM.verify,
        )
        transport.start()
        started.append(transport)
        return Node(key, port, transport)

    yield make
    for transport in started:
        transport.stop()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sm_nodes_link_over_tls_and_no_frame_crosses_in_the_clear(
    make_node: Callable[..., Node],
) -> None:
    proxy = NetProxy(capture_bytes=1 << 20)
    try:
        a, b = SM.generate(), SM.generate()
        allowed = {a.public_hex, b.public_hex}
        node_b = make_node(b, allowed=allowed)
        port = proxy.add_link("a", "b", node_b.port)
        node_a = make_node(a, allowed=allowed, peers=[Peer(b.public_hex, "127.0.0.1", port)])
        wait_until(lambda: a.public_hex in node_b.transport.connected)
        tx: Tx = sign_tx(
            a,
            chain_id=CHAIN,
            contract="anchors",
            method="anchor",
            args={"root": "ab" * 32, "count": 1, "label": "a-label-to-find-on-the-wire"},
            expiry_height=100,
        )
        block_hash = BlockHash(SM.hash(b"a block").hex())
        commit = sign_precommit(a, chain_id=CHAIN, height=7, round_=0, block_hash=block_hash)
        vote = Vote(
            "precommit", Height(7), Round(0), block_hash, PublicKey(a.public_hex), commit.sig
        )
        node_a.transport.broadcast(vote)
        node_a.transport.broadcast_txs([tx])
        kinds = {node_b.received.get(timeout=10)[0] for _ in range(2)}
        assert kinds == {"message", "txs"}
        secrets = [tx.encode(), b"a-label-to-find-on-the-wire", CHAIN.encode(), tx.hash.encode()]
        secrets += [bytes.fromhex(tx.hash), block_hash.encode(), bytes.fromhex(block_hash)]
        captures = proxy.captures("a", "b")
        assert captures
        for sent, answered in captures:
            assert sent[0] == TLS_HANDSHAKE and sent[5] == CLIENT_HELLO
            assert answered[0] == TLS_HANDSHAKE and answered[5] == SERVER_HELLO
            assert not [s for s in secrets if s in sent or s in answered]
    finally:
        proxy.close()


def test_an_sm2_key_not_in_the_node_set_completes_tls_but_gets_no_link(
    make_node: Callable[..., Node],
) -> None:
    a, b, rogue = SM.generate(), SM.generate(), SM.generate()
    allowed = {a.public_hex, b.public_hex}
    node_b = make_node(b, allowed=allowed)
    peer_b = [Peer(b.public_hex, "127.0.0.1", node_b.port)]
    make_node(rogue, allowed=allowed | {rogue.public_hex}, peers=peer_b)
    make_node(a, allowed=allowed, peers=peer_b)
    wait_until(lambda: a.public_hex in node_b.transport.connected)
    time.sleep(1.5)  # the rogue redials every 0.5 s
    assert node_b.transport.connected == {a.public_hex} and node_b.received.empty()


def test_a_relay_terminating_tls_cannot_pass_a_nodes_handshake_on(
    make_node: Callable[..., Node],
) -> None:
    """A man in the middle with link certificates of its own (anyone can make them) relays the
    dialer's hello and the listener's challenge: the challenge's SM2 signature binds the
    listener's TLS pair, not the dialer's, so the dialer refuses it."""
    a, b = SM.generate(), SM.generate()
    node_b = make_node(b, allowed={a.public_hex, b.public_hex})
    mitm = BoundTlsLinks()
    with socket.create_connection(("127.0.0.1", node_b.port), timeout=5) as raw:
        toward_b = mitm.dial(raw, b.public_hex)
        send_frame(
            toward_b.sock,
            {
                "type": "hello",
                "chain_id": CHAIN,
                "pub_key": a.public_hex,
                "nonce": "00" * 16,
                "rules": CONSENSUS_RULES,
            },
        )
        challenge = recv_frame(toward_b.sock)
    # The challenge is signed over the relay's TLS pair; the dialer (A) checks it over its own
    dialer_links = BoundTlsLinks()
    own_pair = channel_binding(dialer_links.certificate_der, mitm.certificate_der)
    signed = challenge_bytes(CHAIN, "00" * 16, own_pair)
    assert challenge["type"] == "challenge" and challenge["pub_key"] == b.public_hex
    assert not SM.verify(b.public_hex, signed, bytes.fromhex(challenge["sig"]))
    relayed = challenge_bytes(CHAIN, "00" * 16, toward_b.binding)
    assert SM.verify(b.public_hex, relayed, bytes.fromhex(challenge["sig"]))
