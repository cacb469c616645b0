"""kill -9 a node under load and restart it: same chain, no acknowledged transaction lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chain.client import ChainClient, Identity
from chain.errors import ClientError
from chain.home import SuiteHome
from chain.tx import sign_tx
from smartcity.demo import init_suite

from ..conftest import free_port
from ._blocks import wait_all_committed

pytestmark = pytest.mark.slow


def start_node(home: Path, port: int, db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SMARTCITY_DATABASE_URL": db_url}
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "smartcity", "node", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=handle,
        stderr=handle,
    )


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path, db_url: str) -> None:
    genesis = init_suite(tmp_path / "suite", validators=1)
    suite = SuiteHome(tmp_path / "suite")
    key = suite.org_key("city-agency")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    home, log = tmp_path / "suite" / "nodes" / "validator-0", tmp_path / "node.log"
    process = start_node(home, port, db_url, log)
    acknowledged: list[str] = []
    stop = threading.Event()
    with ChainClient(url, identity=Identity("city-agency", key)) as client:
        client.wait_until_ready()

        def load() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                txs = [
                    sign_tx(
                        key,
                        chain_id=genesis.chain_id,
                        contract="anchors",
                        method="anchor",
                        args={"root": f"{i:032x}{j:032x}", "count": 1, "label": "load"},
                        expiry_height=5000,
                    )
                    for j in range(20)
                ]
                try:
                    result = client.submit_batch(txs)
                except ClientError:
                    continue  # refused or the node is gone: nothing was acknowledged
                acknowledged.extend(
                    r["hash"] for r in result["results"] if r["status"] == "pending"
                )

        writer = threading.Thread(target=load, daemon=True)
        writer.start()
        time.sleep(2.0)
        before = client.status()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        stop.set()
        writer.join(timeout=30)

    assert len(acknowledged) > 100, "the load generator should have had transactions acknowledged"
    process = start_node(home, port, db_url, log)
    try:
        with ChainClient(url, identity=Identity("city-agency", key)) as client:
            after = client.wait_until_ready()
            assert int(after["height"]) >= int(before["height"])  # type: ignore[call-overload]
            # every acknowledged tx commits, and no tx is in two blocks
            committed = wait_all_committed(client, acknowledged, timeout_s=60)
            # the chain before the crash is unchanged
            block = client.block(int(before["height"]))  # type: ignore[call-overload]
            assert block["header"]["height"] == before["height"]
            # the node's own index agrees with its blocks
            for tx_hash in acknowledged[:50]:
                found = client.tx(tx_hash)
                assert found["status"] == "committed", found
                assert [found["height"]] == committed.heights[tx_hash], found
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
