"""The ledger port services use: the embedded chain in this process, or a remote node via the SDK.

Both implementations honour one contract (tests/common/test_ledger_port.py runs against each):
submit a call as an organisation and get its receipt, read state with or without proof (one key,
or many keys a few thousand per request), fetch a transaction's proof bundle, and resolve a key
to its organisation and roles for authentication.

A remote node's answers about registered keys are reused for a short while (`KEY_CACHE_S`): a
bearer check would otherwise cost two round trips to the node per request. A key revoked, an
organisation suspended or a role changed on the chain therefore takes effect through a remote
node within `KEY_CACHE_S` of its block (through the embedded chain, with the block itself); a key
the node does not know is asked about again every time, so a newly registered key works at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, Protocol, TypeVar

from starlette.concurrency import run_in_threadpool

from chain.client import ChainClient
from chain.errors import ClientError, TxRejected
from chain.genesis import Genesis
from chain.node import Node
from chain.reads import MAX_READ_KEYS, read_keys
from chain.suites import SuiteKey
from chain.tx import Tx, sign_tx

DEFAULT_TTL_BLOCKS = 1000
KEY_CACHE_S = 1.0  # how long a remote node's answer about a key is reused
KEYS_CACHED = 4096  # keys a remote port remembers at most (the cache empties when full)

P = ParamSpec("P")
T = TypeVar("T")


class LedgerPort(Protocol):
    """What a service needs from the chain."""

    @property
    def genesis(self) -> Genesis: ...

    def height(self) -> int: ...

    def submit(self, tx: Tx, *, wait: bool = True, timeout_s: float = 30) -> dict[str, Any]: ...

    def submit_many(self, txs: list[Tx]) -> list[str]: ...

    def receipts(self, txs: list[Tx], *, timeout_s: float = 30) -> list[dict[str, Any]]: ...

    def read(self, namespace: str, key: str) -> Any: ...

    def read_many(self, namespace: str, keys: list[str]) -> list[Any]: ...

    def state_proof(self, namespace: str, key: str) -> dict[str, Any]: ...

    def tx_proof(self, tx_hash: str) -> dict[str, Any] | None: ...

    def resolve_key(self, pub_key: str) -> tuple[str, frozenset[str]] | None: ...


def call(
    port: LedgerPort,
    key: SuiteKey,
    contract: str,
    method: str,
    args: dict[str, Any],
    *,
    wait: bool = True,
    ttl_blocks: int = DEFAULT_TTL_BLOCKS,
) -> dict[str, Any]:
    """Sign a contract call with `key` and submit it; with `wait`, return its receipt."""
    tx = sign_tx(
        key,
        chain_id=port.genesis.chain_id,
        contract=contract,
        method=method,
        args=args,
        expiry_height=port.height() + ttl_blocks,
    )
    return port.submit(tx, wait=wait)


def reads_memory(port: LedgerPort) -> bool:
    """Whether reading state and resolving keys through `port` only reads this process's memory
    (the embedded chain), never waiting on a node."""
    return isinstance(port, EmbeddedLedger)


async def run_reading(
    port: LedgerPort, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run `fn`, which reads the chain through `port`: on the event loop when that reads memory
    (no thread hop), in the thread pool when it may wait on a remote node."""
    if reads_memory(port):
        return fn(*args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)


class EmbeddedLedger:
    """The chain running in this process."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def genesis(self) -> Genesis:
        return self.node.ledger.genesis

    def height(self) -> int:
        return self.node.ledger.height

    def submit(self, tx: Tx, *, wait: bool = True, timeout_s: float = 30) -> dict[str, Any]:
        if wait:
            return self.node.submit_and_wait(tx, timeout_s)
        admitted = self.node.submit([tx])[0]
        return {"hash": admitted.hash, "status": "duplicate" if admitted.duplicate else "pending"}

    def submit_many(self, txs: list[Tx]) -> list[str]:
        return [a.hash for a in self.node.submit(txs)]

    def receipts(self, txs: list[Tx], *, timeout_s: float = 30) -> list[dict[str, Any]]:
        """The receipts of admitted transactions, in order, once each has committed."""
        return [self.submit(tx, wait=True, timeout_s=timeout_s) for tx in txs]

    def read(self, namespace: str, key: str) -> Any:
        return self.node.ledger.read(namespace, key)

    def read_many(self, namespace: str, keys: list[str]) -> list[Any]:
        """As a remote node reads them: the keys checked alike, MAX_READ_KEYS at one height
        (the ledger's lock is held for one batch at a time, not for the whole list)."""
        values: list[Any] = []
        for start in range(0, len(keys), MAX_READ_KEYS):
            batch = keys[start : start + MAX_READ_KEYS]
            values += read_keys(self.node.ledger, namespace, batch).values
        return values

    def state_proof(self, namespace: str, key: str) -> dict[str, Any]:
        return self.node.ledger.state_proof(namespace, key)

    def tx_proof(self, tx_hash: str) -> dict[str, Any] | None:
        return self.node.ledger.tx_proof(tx_hash)

    def resolve_key(self, pub_key: str) -> tuple[str, frozenset[str]] | None:
        return self.node.ledger.resolve_key(pub_key)


class RemoteLedger:
    """A node reached over HTTP through the SDK; errors come back as the chain's own errors."""

    def __init__(
        self,
        client: ChainClient,
        genesis: Genesis,
        *,
        key_cache_s: float = KEY_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._genesis = genesis
        self.key_cache_s = key_cache_s
        self._clock = clock
        self._keys: dict[str, tuple[float, tuple[str, frozenset[str]]]] = {}
        self._keys_lock = threading.Lock()

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    def height(self) -> int:
        return int(self.client.status()["height"])

    def submit(self, tx: Tx, *, wait: bool = True, timeout_s: float = 30) -> dict[str, Any]:
        try:
            if wait:
                return self.client.submit_and_wait(tx, timeout_s)
            return {"hash": self.client.submit(tx), "status": "pending"}
        except ClientError as exc:
            raise _as_rejection(exc) from exc

    def submit_many(self, txs: list[Tx]) -> list[str]:
        """Admit transactions in one request; the first refused item raises with the status
        the node gave it (400 from a node too old to say), a refused request with its own."""
        try:
            result = self.client.submit_batch(txs)
        except ClientError as exc:
            raise _as_rejection(exc) from exc
        for item in result["results"]:
            if item["status"] == "rejected":
                status = item.get("http_status") or 400
                raise TxRejected(item["code"], item["message"], status=int(status))
        return [str(item["hash"]) for item in result["results"]]

    def receipts(self, txs: list[Tx], *, timeout_s: float = 30) -> list[dict[str, Any]]:
        """The receipts of admitted transactions, in order, once each has committed: the last
        one waited for, then one read each for the others (a node commits what it admitted in
        arrival order, so they are in its block or an earlier one)."""
        if not txs:
            return []
        last = self.submit(txs[-1], wait=True, timeout_s=timeout_s)
        out = []
        for tx in txs[:-1]:
            try:
                info = self.client.tx(tx.hash)
            except ClientError as exc:
                if exc.status != 404:
                    raise _as_rejection(exc) from exc
                info = {}  # unknown to the node after all: submitted again below
            receipt = info.get("receipt")
            if info.get("status") == "committed" and isinstance(receipt, dict):
                out.append(receipt)
            else:  # not in a block yet after all: wait for it as for the last one
                out.append(self.submit(tx, wait=True, timeout_s=timeout_s))
        return [*out, last]

    def read(self, namespace: str, key: str) -> Any:
        return self.client.state(namespace, key)

    def read_many(self, namespace: str, keys: list[str]) -> list[Any]:
        """The values of `keys` in requests of MAX_READ_KEYS, not a round trip per key."""
        return self.client.read_many(namespace, keys)

    def events(self, from_height: int | None = None) -> Iterator[dict[str, Any]]:
        """Committed blocks with their contract events, from `from_height` (else the next)."""
        return self.client.events(from_height)

    def state_proof(self, namespace: str, key: str) -> dict[str, Any]:
        return self.client.state_bundle(namespace, key)

    def tx_proof(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return self.client.proof(tx_hash)
        except ClientError as exc:
            if exc.status in (404, 409):
                return None
            raise

    def resolve_key(self, pub_key: str) -> tuple[str, frozenset[str]] | None:
        """The key's organisation and roles as the node answered within `key_cache_s`."""
        now = self._clock()
        cached = self._keys.get(pub_key)
        if cached is not None and now - cached[0] < self.key_cache_s:
            return cached[1]
        resolved = self._resolve_on_node(pub_key)
        if resolved is not None:
            with self._keys_lock:
                if len(self._keys) >= KEYS_CACHED:
                    self._keys.clear()
                self._keys[pub_key] = (now, resolved)
        return resolved

    def _resolve_on_node(self, pub_key: str) -> tuple[str, frozenset[str]] | None:
        record = self.client.state("membership", f"key:{pub_key}")
        if record is None or record["status"] != "active":
            return None
        org = self.client.state("membership", f"org:{record['org']}")
        if org is None or org["status"] != "active":
            return None
        return str(record["org"]), frozenset(org["roles"])


def _as_rejection(exc: ClientError) -> TxRejected:
    """A node's refusal as the chain's own error, with its status. A node out of reach or
    failing (no answer, 500, 502, 503) is the chain being unavailable: 503 with Retry-After,
    as every other chain call of a service answers then (it answered an undeclared 502)."""
    if exc.status is None or exc.status in (500, 502, 503):
        return TxRejected(exc.code or "chain_unavailable", str(exc), status=503)
    return TxRejected(exc.code or "node_error", str(exc), status=exc.status)
