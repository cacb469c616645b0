"""The identity service's chain access: reads, proofs, and writes signed as the acting org.

Writes are self-signed: the service signs a transaction with the acting organisation's own
chain key, which it holds only in demo mode (the suite folder's `orgs/<org>/key.jwk`, as made
by `smartcity init`). Without custody it refuses with NoCustody, and the organisation submits
the same contract call itself through the SDK. Contract refusals become the package's errors.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from chain.errors import ChainError, TxRejected
from chain.suites import SuiteKey, load_any_key
from chain.tx import Tx, sign_tx
from services.common.chain import ServiceChain
from services.common.context import ServiceContext
from services.common.errors import ServiceError
from services.common.ledger import DEFAULT_TTL_BLOCKS, EmbeddedLedger, LedgerPort, RemoteLedger
from services.identity import contract as c
from services.identity.block_cache import BlockCache, NotKept, memory_only
from services.identity.block_feed import EMBEDDED_IDLE_S, BlockFeed, embedded_stream
from services.identity.errors import (
    AlreadyExists,
    ChainRefused,
    DidDeactivated,
    NoCustody,
    NotAuthorisedIssuer,
    NotController,
    UnknownDid,
    UnknownType,
)

# Contract error codes -> the service error a caller gets.
_REFUSALS: dict[str, type[ServiceError]] = {
    "not_issuer": NotAuthorisedIssuer,
    "forbidden": NotController,
    "did_exists": AlreadyExists,
    "type_exists": AlreadyExists,
    "already_issuer": AlreadyExists,
    "unknown_did": UnknownDid,
    "unknown_type": UnknownType,
    "did_deactivated": DidDeactivated,
}


def block_feed(ledger: LedgerPort) -> BlockFeed | None:
    """The committed blocks of the chain `ledger` reaches (None: a port that offers none)."""
    if isinstance(ledger, RemoteLedger):
        return BlockFeed(lambda: ledger.events(ledger.height()))
    if isinstance(ledger, EmbeddedLedger):
        return BlockFeed(embedded_stream(ledger.node), idle_s=EMBEDDED_IDLE_S)
    return None


class IdentityChain(ServiceChain):
    """Reads identity state (with proofs) and submits identity calls as an organisation."""

    namespace = c.NAMESPACE
    refusals = _REFUSALS

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self._keys: dict[str, SuiteKey] = {}
        self._lock = threading.Lock()
        self.feed = block_feed(ctx.ledger)
        # On a remote node reads are kept until its next block (the embedded chain reads memory)
        self.cache = (
            BlockCache(self.feed)
            if self.feed is not None and isinstance(ctx.ledger, RemoteLedger)
            else None
        )

    # -- reads -----------------------------------------------------------------------------------

    def read(self, key: str, *, namespace: str | None = None) -> Any:
        if self.cache is None:
            return super().read(key, namespace=namespace)
        self.cache.start()
        where = namespace or self.namespace
        return self.cache.get(("read", where, key), lambda: self.ledger.read(where, key))

    # read_many (ServiceChain's) is not kept: a status list's keys, up to 131,072 of them, filled
    # the cache's room for a block (MAX_ENTRIES) when they were read one by one through `read`,
    # and the hot paths' reads (keys, methods, anchors) were then not kept until the next block

    def proof(self, key: str, *, namespace: str | None = None) -> dict[str, Any]:
        if self.cache is None:
            return super().proof(key, namespace=namespace)
        self.cache.start()
        where = namespace or self.namespace
        bundle: dict[str, Any] = self.cache.get(
            ("proof", where, key), lambda: self.ledger.state_proof(where, key)
        )
        return bundle

    def resolve_key(self, pub_key: str) -> tuple[str, frozenset[str]] | None:
        """A bearer key's organisation and roles, from membership state read through the cache
        (so a key or role the chain revokes stops working with its block); None: not active."""
        record = self.read(f"key:{pub_key}", namespace="membership")
        if record is None or record["status"] != "active":
            return None
        org = self.read(f"org:{record['org']}", namespace="membership")
        if org is None or org["status"] != "active":
            return None
        return str(record["org"]), frozenset(org["roles"])

    def resolve_kept_key(self, pub_key: str) -> tuple[str, frozenset[str]]:
        """`resolve_key` from kept reads only; NotKept (a LookupError) where it needs the node,
        and for a key kept as not active: one registered a moment ago is asked of the node."""
        with memory_only():
            resolved = self.resolve_key(pub_key)
        if resolved is None:
            raise NotKept(f"the node (key {pub_key[:16]}…, kept as not active)")
        return resolved

    # -- writes ----------------------------------------------------------------------------------

    def signer(self, org: str) -> SuiteKey:
        """The org's own chain key, when the service holds it (demo mode)."""
        with self._lock:
            if org in self._keys:
                return self._keys[org]
            path = Path(self.ctx.data_dir) / "orgs" / org / "key.jwk"
            if not self.ctx.demo or not path.is_file():
                raise NoCustody(
                    f"this service does not hold {org}'s chain key: submit the identity"
                    " contract call yourself with the SDK"
                )
            key = load_any_key(path)
            registered = self.ledger.resolve_key(key.public_hex)
            if registered is None or registered[0] != org:
                raise NoCustody(f"the key on file for {org} is not its active chain key")
            self._keys[org] = key
            return key

    def sign(self, org: str, method: str, args: dict[str, Any]) -> Tx:
        return self.sign_all(org, method, [args])[0]

    def sign_all(self, org: str, method: str, calls: list[dict[str, Any]]) -> list[Tx]:
        """One transaction per call's arguments, all expiring alike (one height read: on a
        remote node each is an HTTP request)."""
        expiry_height = self.ledger.height() + DEFAULT_TTL_BLOCKS
        return [
            sign_tx(
                self.signer(org),
                chain_id=self.ledger.genesis.chain_id,
                contract=c.NAMESPACE,
                method=method,
                args=args,
                expiry_height=expiry_height,
            )
            for args in calls
        ]

    def submit(self, org: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Sign as `org`, submit, wait for the commit; a failed receipt raises its error."""
        return self.submit_all([self.sign(org, method, args)])[0]

    def submit_all(self, txs: list[Tx]) -> list[dict[str, Any]]:
        """Submit signed transactions together (one or a few blocks) and wait for each."""
        try:
            if len(txs) > 1:
                self.ledger.submit_many(txs)
            receipts = [self.ledger.submit(tx, wait=True) for tx in txs]
        except TxRejected as exc:
            raise ChainRefused(f"the chain refused the transaction: {exc.message}") from exc
        except ChainError as exc:
            raise ChainRefused(
                f"the chain is unavailable: {exc}", code="chain_unavailable"
            ) from exc
        finally:
            if self.cache is not None:  # read what was just written, not the block before
                self.cache.forget()
        return [self.require_ok(receipt) for receipt in receipts]
