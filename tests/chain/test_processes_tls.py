"""Four validator processes link over TLS only, and a node whose key is not in the genesis gets
no link.

Each `smartcity node` made by `init_suite` (TLS by default) reaches its peers through a relay
that keeps the first bytes of every connection each way (tests/chain/_netproxy.py). After the
chain has committed a load of transactions, every connection between two validators opens with
a TLS handshake record in both directions, and none of the bytes carries a transaction, a
transaction or block hash (raw or hex) or the chain id: no plaintext block data crossed. A fifth
process, an observer with a key of its own dialling every validator directly, stays at height 0,
counts in no validator's peers, and logs that the validators refuse its link.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.client import ChainClient, Identity
from chain.crypto import SigningKey, save_key
from chain.tx import Tx, sign_tx

from ..conftest import free_port
from ._proccluster import ORG, Cluster

pytestmark = pytest.mark.slow

CAPTURE_BYTES = 1 << 20  # per connection and direction: the handshake and the first blocks
TLS_HANDSHAKE, CLIENT_HELLO, SERVER_HELLO = 0x16, 0x01, 0x02
TXS = 40


def _backend() -> str:
    url = os.environ.get("SMARTCITY_DATABASE_URL", "")
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path, _backend(), capture_bytes=CAPTURE_BYTES)
    try:
        for name in running.names:
            running.start(name)
        for name in running.names:
            running.wait_ready(name)
        yield running
    finally:
        running.stop_all()


def _rogue(cluster: Cluster) -> tuple[subprocess.Popen[bytes], str]:
    """An observer of the same genesis under a key the genesis does not name, dialling every
    validator's own P2P port (no relay)."""
    home = cluster.root / "rogue"
    save_key(SigningKey.generate(), home / "node_key.jwk")
    peers = []
    for name in cluster.names:
        config = json.loads((cluster.suite / "nodes" / name / "node.json").read_text())
        pub_key = next(v.pub_key for v in cluster.genesis.validators if v.name == name)
        peers.append({"name": name, "pub_key": pub_key, "port": config["p2p_port"]})
    settings = {
        "name": "rogue",
        "role": "observer",
        "genesis": str(cluster.suite / "genesis.json"),
        "port": free_port(),
        "p2p_port": free_port(),
        "peers": peers,
    }
    (home / "node.json").write_text(json.dumps(settings))
    log = (cluster.root / "rogue.log").open("ab")
    env = {**os.environ, "SMARTCITY_DATABASE_URL": f"sqlite:///{home / 'chain.db'}"}
    cmd = [sys.executable, "-m", "smartcity", "node", "--home", str(home)]
    process = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    return process, f"http://127.0.0.1:{settings['port']}"


def _load(cluster: Cluster) -> list[Tx]:
    txs = [
        sign_tx(
            cluster.key,
            chain_id=cluster.genesis.chain_id,
            contract="anchors",
            method="anchor",
            args={"root": f"{n:064x}", "count": 1, "label": "tls-process-test"},
            expiry_height=5000,
        )
        for n in range(TXS)
    ]
    for i, name in enumerate(cluster.names):  # each validator gossips some to the others
        cluster.client(name).submit_batch(txs[i::4])
    deadline = time.monotonic() + 90
    while any(cluster.tx_status("validator-0", t.hash) != "committed" for t in txs):
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.3)
    return txs


def _secrets(cluster: Cluster, txs: list[Tx]) -> list[bytes]:
    top = cluster.height("validator-0")
    block_hashes = [str(cluster.block("validator-0", h)["hash"]) for h in range(1, top + 1)]
    hashes = [t.hash for t in txs] + block_hashes
    return [
        cluster.genesis.chain_id.encode(),
        b"tls-process-test",
        *(t.encode() for t in txs),
        *(h.encode() for h in hashes),
        *(bytes.fromhex(h) for h in hashes),
    ]


def test_validators_link_over_tls_only_and_a_rogue_key_gets_no_link(cluster: Cluster) -> None:
    rogue, rogue_url = _rogue(cluster)
    try:
        txs = _load(cluster)
        secrets = _secrets(cluster, txs)
        for dialer in cluster.names:
            for peer in (n for n in cluster.names if n != dialer):
                captures = cluster.proxy.captures(dialer, peer)
                assert captures, f"{dialer} never reached {peer}"
                for sent, answered in captures:
                    # Verify the stream opens with a TLS ClientHello and ServerHello
                    assert sent[:2] == bytes([TLS_HANDSHAKE, 3]) and sent[5] == CLIENT_HELLO
                    assert answered[:2] == bytes([TLS_HANDSHAKE, 3])
                    assert answered[5] == SERVER_HELLO
                    leaked = [s for s in secrets if s in sent or s in answered]
                    assert not leaked, f"{dialer}->{peer} carried {leaked[:3]} in the clear"
        # The rogue runs and dials, but no validator admits it: it never gets a block
        with ChainClient(rogue_url, identity=Identity(ORG, cluster.key)) as client:
            client.wait_until_ready(timeout_s=120)
            time.sleep(2.0)  # a few more redials (every 0.5 s)
            assert client.status()["height"] == 0 < cluster.height("validator-0")
        rogue_log = (cluster.root / "rogue.log").read_text()
        assert rogue.poll() is None, rogue_log[-2000:]
        # ...and its operator is told why
        assert "refused the link" in rogue_log and "UNKNOWN_CA" in rogue_log, rogue_log[-2000:]
        peers = {n: g.get("p2p_peers") for n, g in cluster.consensus().items()}
        assert all(count == len(cluster.names) - 1 for count in peers.values()), peers
    finally:
        rogue.terminate()
        rogue.wait(timeout=15)
