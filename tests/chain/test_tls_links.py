"""Node links over TLS 1.3: encrypted on the wire, open to the chain's node keys only.

Real TcpTransports on loopback, one node dialling another through a relay that keeps the bytes
it forwards (tests/chain/_netproxy.py): the stream opens with a TLS handshake record and no
frame's content crosses in the clear, while over demo plaintext the same search finds it. A key
that is not a node of the chain gets no link, nor does a dialer whose certificate and handshake
name different keys, nor a plaintext peer of a TLS node. Plaintext is a setting for a demo on
one machine: `smartcity init --p2p-plaintext`, refused off loopback.
"""

from __future__ import annotations

import json
import queue
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.block import sign_precommit
from chain.consensus.messages import Vote
from chain.consensus.tcp import Peer, TcpTransport
from chain.consensus.tls import Links, PlaintextLinks, TlsLinks
from chain.crypto import SigningKey
from chain.errors import ChainError
from chain.home import load_node_home
from chain.server import open_node
from chain.tx import Tx, sign_tx
from chain.types import BlockHash, Height, PublicKey, Round
from smartcity.cli import main
from smartcity.demo import init_suite

from ..conftest import free_port
from ._netproxy import NetProxy

CHAIN = "smartcity-tls-test"
TLS_HANDSHAKE = 0x16
CLIENT_HELLO, SERVER_HELLO = 0x01, 0x02


class Node:
    """One transport and what its handler received."""

    def __init__(self, key: SigningKey, port: int, transport: TcpTransport) -> None:
        self.key, self.port, self.transport = key, port, transport
        self.received: queue.Queue[tuple[str, Any, str]] = queue.Queue()
        transport.handler = lambda kind, payload, sender: self.received.put((kind, payload, sender))

    def next(self, timeout_s: float = 10) -> tuple[str, Any, str]:
        return self.received.get(timeout=timeout_s)


@pytest.fixture
def make_node() -> Iterator[Callable[..., Node]]:
    started: list[TcpTransport] = []

    def make(
        key: SigningKey,
        *,
        allowed: set[str],
        peers: list[Peer] = (),  # type: ignore[assignment]
        links: Links | None = None,
    ) -> Node:
        port = free_port()
        transport = TcpTransport(
            chain_id=CHAIN,
            key=key,
            listen=("127.0.0.1", port),
            peers=list(peers),
            allowed=allowed,
            links=links or TlsLinks(key, allowed, allowed),
        )
        node = Node(key, port, transport)
        transport.start()
        started.append(transport)
        return node

    yield make
    for transport in started:
        transport.stop()


@pytest.fixture
def proxy() -> Iterator[NetProxy]:
    relay = NetProxy(capture_bytes=1 << 20)
    yield relay
    relay.close()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _tx(key: SigningKey) -> Tx:
    return sign_tx(
        key,
        chain_id=CHAIN,
        contract="anchors",
        method="anchor",
        args={"root": "ab" * 32, "count": 1, "label": "a-label-to-find-on-the-wire"},
        expiry_height=100,
    )


def _vote(key: SigningKey, block_hash: BlockHash) -> Vote:
    signed = sign_precommit(key, chain_id=CHAIN, height=7, round_=0, block_hash=block_hash)
    return Vote("precommit", Height(7), Round(0), block_hash, PublicKey(key.public_hex), signed.sig)


def _talk(make_node: Callable[..., Node], proxy: NetProxy, plaintext: bool) -> tuple[Tx, str]:
    """A dials B through the relay and sends a vote and a transaction; B gets both."""
    a, b = SigningKey.generate(), SigningKey.generate()
    allowed = {a.public_hex, b.public_hex}
    links_b = PlaintextLinks() if plaintext else None
    node_b = make_node(b, allowed=allowed, links=links_b)
    port = proxy.add_link("a", "b", node_b.port)
    links_a = PlaintextLinks() if plaintext else None
    node_a = make_node(
        a, allowed=allowed, peers=[Peer(b.public_hex, "127.0.0.1", port)], links=links_a
    )
    wait_until(lambda: a.public_hex in node_b.transport.connected)
    tx, block_hash = _tx(a), BlockHash(SigningKey.generate().public_hex)  # any 32 bytes
    node_a.transport.broadcast(_vote(a, block_hash))
    node_a.transport.broadcast_txs([tx])
    kinds = {node_b.next()[0]: None for _ in range(2)}
    assert set(kinds) == {"message", "txs"}
    return tx, block_hash


def _carried(tx: Tx, block_hash: str) -> list[bytes]:
    """What the frames carry: the transaction's bytes, the voted block's hash, the chain id."""
    return [tx.encode(), b"a-label-to-find-on-the-wire", block_hash.encode(), CHAIN.encode()]


def _secrets(tx: Tx, block_hash: str) -> list[bytes]:
    """What a reader of the wire must not find: the above, and the hashes in any form."""
    return [
        *_carried(tx, block_hash),
        bytes.fromhex(tx.hash),
        tx.hash.encode(),
        bytes.fromhex(block_hash),
    ]


def test_the_stream_between_two_nodes_is_tls_and_carries_no_plaintext(
    make_node: Callable[..., Node], proxy: NetProxy
) -> None:
    tx, block_hash = _talk(make_node, proxy, plaintext=False)
    captures = proxy.captures("a", "b")
    assert captures
    for sent, answered in captures:
        # Verify each direction opens with a TLS handshake record: ClientHello, ServerHello
        assert sent[0] == TLS_HANDSHAKE and sent[1] == 0x03 and sent[5] == CLIENT_HELLO
        assert answered[0] == TLS_HANDSHAKE and answered[1] == 0x03
        assert answered[5] == SERVER_HELLO
        for secret in _secrets(tx, block_hash):
            assert secret not in sent and secret not in answered


def test_over_demo_plaintext_the_same_search_finds_the_frames(
    make_node: Callable[..., Node], proxy: NetProxy
) -> None:
    tx, block_hash = _talk(make_node, proxy, plaintext=True)
    sent = b"".join(out for out, _ in proxy.captures("a", "b"))
    for carried in _carried(tx, block_hash):
        assert carried in sent


def _never_connects(listener: Node, dialer_key: str, wait_s: float = 2.5) -> None:
    time.sleep(wait_s)  # several redials (every 0.5 s)
    assert dialer_key not in listener.transport.connected
    assert listener.received.empty()


def test_a_key_not_in_the_node_set_cannot_connect(make_node: Callable[..., Node]) -> None:
    a, b, rogue = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    allowed = {a.public_hex, b.public_hex}
    node_b = make_node(b, allowed=allowed)
    peer_b = [Peer(b.public_hex, "127.0.0.1", node_b.port)]
    # The rogue trusts B and offers itself; B's anchors and checks know only the chain's keys
    make_node(rogue, allowed=allowed | {rogue.public_hex}, peers=peer_b)
    make_node(a, allowed=allowed, peers=peer_b)
    wait_until(lambda: a.public_hex in node_b.transport.connected)
    _never_connects(node_b, rogue.public_hex)
    assert node_b.transport.connected == {a.public_hex}


def test_the_tls_handshake_itself_refuses_an_unknown_certificate(
    make_node: Callable[..., Node],
) -> None:
    b, rogue = SigningKey.generate(), SigningKey.generate()
    node_b = make_node(b, allowed={b.public_hex})
    rogue_links = TlsLinks(rogue, {b.public_hex}, {b.public_hex})
    with socket.create_connection(("127.0.0.1", node_b.port), timeout=5) as raw:
        channel = rogue_links.dial(raw, b.public_hex)  # the rogue accepts B's certificate...
        with channel.sock as sock, pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
            sock.recv(1)  # ...and B answers its certificate with an unknown_ca alert


def test_a_dialer_refuses_a_listener_that_is_not_the_peer_dialled(
    make_node: Callable[..., Node],
) -> None:
    a, b, c = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    allowed = {a.public_hex, b.public_hex, c.public_hex}
    node_c = make_node(c, allowed=allowed)
    node_a = make_node(a, allowed=allowed)
    # A believes B listens where C does: C is a node, but not the one A means to reach
    links = TlsLinks(a, allowed, allowed)
    with (
        socket.create_connection(("127.0.0.1", node_c.port), timeout=5) as raw,
        pytest.raises(ConnectionError, match="not of the peer dialled"),
    ):
        links.dial(raw, b.public_hex)
    assert node_a.transport.connected == set()


def test_plaintext_and_tls_nodes_do_not_link(make_node: Callable[..., Node]) -> None:
    a, b, c, d = (SigningKey.generate() for _ in range(4))
    allowed = {a.public_hex, b.public_hex, c.public_hex, d.public_hex}
    tls_b = make_node(b, allowed=allowed)
    plain_c = make_node(c, allowed=allowed, links=PlaintextLinks())
    make_node(
        a,
        allowed=allowed,
        peers=[Peer(b.public_hex, "127.0.0.1", tls_b.port)],
        links=PlaintextLinks(),
    )
    make_node(d, allowed=allowed, peers=[Peer(c.public_hex, "127.0.0.1", plain_c.port)])
    _never_connects(tls_b, a.public_hex)
    assert plain_c.transport.connected == set()


def test_a_validator_added_later_is_admitted_and_one_removed_is_refused(
    make_node: Callable[..., Node],
) -> None:
    a, b, late = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    allowed = {a.public_hex, b.public_hex}  # the live set: governance changes it
    node_b = make_node(b, allowed=allowed)
    peer_b = [Peer(b.public_hex, "127.0.0.1", node_b.port)]
    late_node = make_node(late, allowed={b.public_hex, late.public_hex}, peers=peer_b)
    _never_connects(node_b, late.public_hex, wait_s=1.5)
    allowed.add(late.public_hex)  # governance adds it: anchored at the next link, admitted
    wait_until(lambda: late.public_hex in node_b.transport.connected)
    allowed.discard(late.public_hex)  # removed: its anchor stays, its admission does not
    late_node.transport.stop()
    wait_until(lambda: late.public_hex not in node_b.transport.connected)
    make_node(late, allowed={b.public_hex, late.public_hex}, peers=peer_b)
    _never_connects(node_b, late.public_hex, wait_s=1.5)


# -- settings: TLS unless a demo on one machine says otherwise -------------------------------


def _settings(suite: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((suite / "nodes" / name / "node.json").read_text()))


def test_init_writes_tls_links_and_plaintext_only_on_request(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--out", str(tmp_path / "tls"), "--validators", "2"])
    assert result.exit_code == 0, result.output
    assert _settings(tmp_path / "tls", "validator-0")["p2p_plaintext"] is False
    args = ["init", "--out", str(tmp_path / "demo"), "--validators", "2", "--p2p-plaintext"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert _settings(tmp_path / "demo", "validator-1")["p2p_plaintext"] is True
    refused = CliRunner().invoke(
        main,
        ["init", "--out", str(tmp_path / "c"), "--p2p-plaintext", "--container-network"],
    )
    assert refused.exit_code == 1 and "not a container network" in refused.output


def test_a_node_refuses_plaintext_links_off_loopback(tmp_path: Path) -> None:
    init_suite(tmp_path / "s", validators=2, p2p_plaintext=True)
    path = tmp_path / "s" / "nodes" / "validator-0" / "node.json"
    path.write_text(json.dumps({**_settings(tmp_path / "s", "validator-0"), "p2p_host": "0.0.0.0"}))
    with pytest.raises(ChainError, match="p2p_plaintext is for a demo on one machine"):
        open_node(load_node_home(path.parent), database_url=f"sqlite:///{tmp_path / 'v0.db'}")


def test_a_listener_whose_challenge_lacks_its_nonce_does_not_end_the_dialling(
    make_node: Callable[..., Node],
) -> None:
    """A peer that proves its key but sends no nonce of its own is refused, and the dialer goes
    on trying that peer (an uncaught KeyError used to end its dialling thread for good)."""
    from chain.consensus.tcp import CONSENSUS_RULES, challenge_bytes, recv_frame, send_frame

    a, b = SigningKey.generate(), SigningKey.generate()
    allowed = {a.public_hex, b.public_hex}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    make_node(
        a, allowed=allowed, peers=[Peer(b.public_hex, "127.0.0.1", port)], links=PlaintextLinks()
    )
    with listener:
        for _ in range(2):  # the second connection shows the dialling survived the first
            conn, _ = listener.accept()
            with conn:
                hello = recv_frame(conn)
                proof = b.sign(challenge_bytes(CHAIN, str(hello["nonce"]), b"")).hex()
                send_frame(
                    conn,
                    {
                        "type": "challenge",
                        "pub_key": b.public_hex,
                        "rules": CONSENSUS_RULES,
                        "sig": proof,
                    },
                )


def test_a_dialler_of_other_consensus_rules_is_refused_and_told_ours(
    make_node: Callable[..., Node], caplog: pytest.LogCaptureFixture
) -> None:
    """A node of a release before the ZIP-215 rule (its hello names no rules) could accept
    other blocks than this one: the listener answers `refused` with its rules, closes the link
    and warns once, however often the other redials and whatever it names."""
    from chain.consensus.tcp import CONSENSUS_RULES, recv_frame, send_frame

    a, b = SigningKey.generate(), SigningKey.generate()
    node = make_node(a, allowed={a.public_hex, b.public_hex}, links=PlaintextLinks())
    hello = {"type": "hello", "chain_id": CHAIN, "pub_key": b.public_hex, "nonce": "ab" * 16}
    # the third names rules of its choosing: still no second warning (it picks the text)
    hellos = [hello, hello, {**hello, "rules": "x\nforged log line"}]
    with caplog.at_level("WARNING", logger="chain.consensus.tcp"):
        for sent in hellos:
            with socket.create_connection(("127.0.0.1", node.port), timeout=5) as conn:
                send_frame(conn, sent)
                assert recv_frame(conn) == {"type": "refused", "rules": CONSENSUS_RULES}
                assert conn.recv(1) == b""  # and closed
    warnings = [r.getMessage() for r in caplog.records if "consensus rules" in r.getMessage()]
    assert len(warnings) == 1
    assert "a release before any named" in warnings[0] and CONSENSUS_RULES in warnings[0]
    assert b.public_hex not in node.transport.connected


@pytest.mark.parametrize("answer", ["challenge", "refused"])
def test_a_listener_of_other_consensus_rules_is_not_linked_to(
    make_node: Callable[..., Node], caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    """The dialer refuses a challenge naming other rules before it signs anything (the
    challenge's signature is valid, so only the rules can stop it), as it does a `refused`
    answer; it warns once and keeps dialling (the peer may be upgraded)."""
    from chain.consensus.tcp import challenge_bytes, recv_frame, send_frame

    a, b = SigningKey.generate(), SigningKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    with caplog.at_level("WARNING", logger="chain.consensus.tcp"):
        make_node(
            a,
            allowed={a.public_hex, b.public_hex},
            peers=[Peer(b.public_hex, "127.0.0.1", port)],
            links=PlaintextLinks(),
        )
        with listener:
            for rules in ("ed25519-strict", "another text"):
                conn, _ = listener.accept()
                with conn:
                    hello = recv_frame(conn)
                    proof = b.sign(challenge_bytes(CHAIN, str(hello["nonce"]), b"")).hex()
                    reply = {"type": answer, "rules": rules}
                    if answer == "challenge":
                        reply |= {"pub_key": b.public_hex, "nonce": "cd" * 16, "sig": proof}
                    send_frame(conn, reply)
                    conn.settimeout(5)
                    assert conn.recv(1) == b""  # no auth frame: the dialer hung up
    warnings = [r.getMessage() for r in caplog.records if "consensus rules" in r.getMessage()]
    assert len(warnings) == 1
    assert "('ed25519-strict')" in warnings[0]
