"""A full status list built cold from a remote node: a worker's first GET of a list holding
131,072 credentials, beside the chain reads of one request per key that the build made before.

As deployed: a chain node and `smartcity service identity --workers 1` in processes of their
own on SQLite (bench/_identity_http.py). List 0 of city-agency holds the 512 credentials issued
through the service (five revoked) and rows for every other entry of the list, inserted straight
into the service's database (the build reads only their indexes there, and one status key each
on the chain). Rows: the cold GET over HTTP (the worker has never built the list) and a warm one;
then, from this process to the node, the list's status keys read one request per key (what each
cold build did before) and MAX_READ_KEYS a request (what it does now), with the bits compared.
BENCH_STATUS_ENTRIES (default a full list) sets how many credentials the list holds;
BENCH_KEY_BY_KEY=0 skips the one-request-per-key read (minutes for a full list).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, select

from bench._identity_http import identity_workers
from bench._processes import cpu_s
from chain.client import ChainClient, Identity
from chain.home import SuiteHome
from chain.reads import MAX_READ_KEYS
from services.common.ledger import RemoteLedger
from services.identity import contract as c
from services.identity.credentials.status_list import StatusList
from services.identity.models import IssuedCredential

AGENCY = "city-agency"
PURPOSE = "revocation"
REVOKED = 5


def _row(name: str, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"bench": "identity_status_cold", "name": name, "seconds": round(seconds, 3), **extra}


def _fill_list(database: Path, entries: int) -> tuple[int, list[str], list[int]]:
    """List 0's rows up to `entries` credentials: (the list, ids issued through the service,
    every index of the list held)."""
    engine = create_engine(f"sqlite:///{database}")
    credential = IssuedCredential
    with engine.begin() as conn:
        issued = conn.execute(
            select(credential.id, credential.list_no, credential.list_index).where(
                credential.org == AGENCY
            )
        ).all()
        list_no = issued[0].list_no
        held = {row.list_index for row in issued if row.list_no == list_no}
        free = (i for i in range(c.LIST_ENTRIES) if i not in held)
        now = datetime.now(UTC)
        rows = [
            {
                "id": f"urn:uuid:bench-{index}",
                "org": AGENCY,
                "type": "ResidenceCredential",
                "subject_did": "did:smartcity:bench",
                "format": "vc+jwt",
                "hash": f"{index:064x}",
                "list_no": list_no,
                "list_index": index,
                "sealed_claims": b"",
                "issued_at": now,
                "anchor_tx": "00" * 32,
                "anchor_height": 1,
            }
            for _, index in zip(range(entries - len(held)), free, strict=False)
        ]
        if rows:
            conn.execute(insert(credential), rows)
    engine.dispose()
    indexes = sorted(held | {row["list_index"] for row in rows})
    return list_no, [row.id for row in issued if row.list_no == list_no], indexes


def _node_url(suite: Path) -> str:
    config = json.loads((suite / "nodes" / "validator-0" / "node.json").read_text())
    return f"http://127.0.0.1:{config['port']}"


def _bits(values: list[Any], indexes: list[int]) -> bytes:
    bits = StatusList()
    for index, entry in zip(indexes, values, strict=True):
        if entry is not None and entry["value"]:
            bits.set(index)
    return bits.to_bytes()


def _chain_reads(
    node: str, home: SuiteHome, list_no: int, indexes: list[int]
) -> tuple[list[dict[str, Any]], bytes]:
    """The list's status keys from this process, many a request then (if asked) one per key:
    the rows, and the list's bits as read many a request."""
    keys = [c.status_key(AGENCY, list_no, PURPOSE, index) for index in indexes]
    identity = Identity(AGENCY, home.org_key(AGENCY))
    results = []
    with ChainClient(node, identity=identity, timeout_s=600) as client:
        ledger = RemoteLedger(client, home.genesis())
        start = time.perf_counter()
        many = ledger.read_many(c.NAMESPACE, keys)
        many_s = time.perf_counter() - start
        row = _row(
            "status_keys_read_many_remote",
            many_s,
            keys=len(keys),
            requests=math.ceil(len(keys) / MAX_READ_KEYS),
            keys_per_second=round(len(keys) / many_s, 1),
        )
        if os.environ.get("BENCH_KEY_BY_KEY", "1") != "0":
            start = time.perf_counter()
            one_by_one = [ledger.read(c.NAMESPACE, key) for key in keys]
            each_s = time.perf_counter() - start
            results.append(
                _row(
                    "status_keys_read_key_by_key_remote",
                    each_s,
                    keys=len(keys),
                    requests=len(keys),
                    keys_per_second=round(len(keys) / each_s, 1),
                )
            )
            row["same_bits_as_key_by_key"] = _bits(many, indexes) == _bits(one_by_one, indexes)
            row["key_by_key_over_read_many"] = round(each_s / many_s, 1)
        results.append(row)
    return results, _bits(many, indexes)


def run() -> list[dict[str, Any]]:
    entries = int(os.environ.get("BENCH_STATUS_ENTRIES", str(c.LIST_ENTRIES)))
    with tempfile.TemporaryDirectory() as tmp, identity_workers(Path(tmp), 1) as facts_of:
        pids, node_pid, facts = facts_of
        list_no, ids, indexes = _fill_list(Path(tmp) / "identity.db", entries)
        headers = {"Authorization": f"Bearer {facts['token']}"}
        with httpx.Client(base_url=facts["base"], headers=headers, timeout=900) as http:
            for credential in ids[:REVOKED]:
                http.post(f"/credentials/{credential}/revoke", json={}).raise_for_status()
            path = f"/status-lists/{AGENCY}/{list_no}/{PURPOSE}"
            worker0, node0, start = cpu_s(pids[0]), cpu_s(node_pid), time.perf_counter()
            cold = http.get(path)
            cold_s = time.perf_counter() - start
            cold.raise_for_status()
            worker_s, node_s = cpu_s(pids[0]) - worker0, cpu_s(node_pid) - node0
            start = time.perf_counter()
            http.get(path).raise_for_status()
            warm_s = time.perf_counter() - start
        served = StatusList.decode(cold.json()["document"]["credentialSubject"]["encodedList"])
        results = [
            _row(
                "status_list_cold_get_http",
                cold_s,
                credentials_in_list=len(indexes),
                revoked=sum(served.get(i) for i in indexes),
                chain_read_requests=math.ceil(len(indexes) / MAX_READ_KEYS),
                worker_cpu_s=round(worker_s, 3),
                node_cpu_s=round(node_s, 3),
            ),
            _row("status_list_warm_get_http", warm_s, credentials_in_list=len(indexes)),
        ]
        suite = Path(tmp) / "suite"
        reads, bits = _chain_reads(_node_url(suite), SuiteHome(suite), list_no, indexes)
        reads[-1]["same_bits_as_served"] = bits == served.to_bytes()
        return results + reads


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
