"""A proposed block for the real ledger, and the application consensus runs it against."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain.block import Header
from chain.errors import ChainError
from chain.ledger import BlockResult, InvalidBlock, Ledger
from chain.mempool import Mempool
from chain.tx import Tx, tx_from_canonical, tx_from_json
from chain.types import BlockHash

MAX_CLOCK_SKEW_MS = 5_000


@dataclass(frozen=True, eq=False)
class Candidate:
    header: Header
    txs: tuple[Tx, ...]

    @cached_property
    def hash(self) -> BlockHash:
        return self.header.hash

    def to_json(self) -> dict[str, Any]:
        """Header and transactions as their canonical JSON text (what a validator persists
        with its lock)."""
        return {"header": self.header.to_json(), "txs": [tx.encode().decode() for tx in self.txs]}

    @classmethod
    def from_json(cls, value: Any) -> Candidate:
        # Locks persisted before 0.2 hold transactions as JSON objects
        txs = tuple(
            tx_from_canonical(t.encode()) if isinstance(t, str) else tx_from_json(t)
            for t in value["txs"]
        )
        return cls(Header.from_json(value["header"]), txs)


@dataclass(frozen=True, eq=False)
class CompactBlock:
    """A proposed block as the wire carries it: its header and its transactions' hashes."""

    header: Header
    tx_hashes: tuple[str, ...]

    @cached_property
    def hash(self) -> BlockHash:
        return self.header.hash

    def resolve(self, find: Callable[[str], Tx | None]) -> tuple[Candidate | None, list[str]]:
        """The full candidate when `find` knows every transaction, else the missing hashes."""
        txs, missing = [], []
        for digest in self.tx_hashes:
            tx = find(digest)
            if tx is None:
                missing.append(digest)
            else:
                txs.append(tx)
        if missing:
            return None, missing
        return Candidate(self.header, tuple(txs)), []


class ExecutedBlocks:
    """Blocks this process has executed, by block hash: in one process (`make up`'s four
    validators) one execution serves them all, as one signature check does (chain.tx.VERIFIED).

    Sound because execution is deterministic and a block hash commits to everything it
    depends on: the chain, the height, the previous block (hence the state it starts from)
    and the state root it must end at. Bounded: the last few heights' proposals."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._results: OrderedDict[str, BlockResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, block_hash: str) -> BlockResult | None:
        with self._lock:
            return self._results.get(block_hash)

    def add(self, block_hash: str, result: BlockResult) -> None:
        with self._lock:
            self._results[block_hash] = result
            self._results.move_to_end(block_hash)
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)


EXECUTED = ExecutedBlocks()


class LedgerApp:
    """Proposes blocks from the mempool; validates a proposal by executing it and comparing."""

    def __init__(
        self,
        ledger: Ledger,
        mempool: Mempool,
        proposer: str | None,
        clock_ms: Callable[[], int] | None = None,
        max_block_txs: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.mempool = mempool
        self.proposer = proposer or ""
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.max_block_txs = max_block_txs or ledger.genesis.params.max_block_txs
        self.results: dict[str, BlockResult] = {}

    def propose(self, height: int, round_: int) -> Candidate:
        ledger = self.ledger
        txs = self.mempool.reap(
            self.max_block_txs,
            lambda tx: tx.expiry_height >= height and tx.hash not in ledger.live_txs,
        )
        last = ledger.last_header.time_ms if ledger.last_header else ledger.genesis.genesis_time_ms
        result = ledger.execute(
            txs,
            height=height,
            time_ms=max(self.clock_ms(), last + 1),
            proposer=self.proposer,
        )
        candidate = Candidate(result.header, tuple(txs))
        self.results[candidate.hash] = result
        EXECUTED.add(candidate.hash, result)
        return candidate

    def is_valid(self, value: Any, *, certified: bool = False) -> bool:
        if not isinstance(value, Candidate):
            return False
        if value.hash in self.results:
            return True
        header = value.header
        # Verify the block is for the next height and, unless certified, not from the future
        if header.height != self.ledger.height + 1:
            return False
        if not certified and header.time_ms > self.clock_ms() + MAX_CLOCK_SKEW_MS:
            return False
        shared = EXECUTED.get(value.hash)
        if (
            shared is not None
            and header.prev_hash == self.ledger.prev_hash
            and [tx.hash for tx in shared.txs] == [tx.hash for tx in value.txs]
        ):
            # Another validator of this process executed exactly this block on this parent
            self.results[value.hash] = shared
            return True
        try:
            result = self.ledger.execute(
                list(value.txs),
                height=header.height,
                time_ms=header.time_ms,
                proposer=header.proposer,
            )
        except (InvalidBlock, ChainError):
            return False
        # Verify executing it gives exactly the proposed header (state root, receipts, validators)
        if result.header != header:
            return False
        self.results[value.hash] = result
        EXECUTED.add(value.hash, result)
        return True

    def result_for(self, candidate: Candidate) -> BlockResult:
        result = self.results.get(candidate.hash)
        if result is None:
            if not self.is_valid(candidate, certified=True):
                raise InvalidBlock(f"decided block {candidate.hash} does not execute to its header")
            result = self.results[candidate.hash]
        return result

    def forget(self) -> None:
        self.results.clear()
