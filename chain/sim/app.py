"""The simulated application: small blocks of signed transactions, validated like the ledger's."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property

from chain.crypto import SigningKey, verify
from chain.encoding import canonical
from chain.types import BlockHash

MAX_SKEW_MS = 2_000
_CLIENT = SigningKey.from_seed(b"sim-client".ljust(32, b"\0"))


@dataclass(frozen=True)
class SimTx:
    id: int
    sig: str

    @property
    def message(self) -> bytes:
        return f"sim-tx-{self.id}".encode()


@cache
def tx_pool(size: int = 64, bad: int = 8) -> tuple[SimTx, ...]:
    """Signed transactions, the last `bad` of them with signatures that do not verify."""
    good = [SimTx(i, _CLIENT.sign(f"sim-tx-{i}".encode()).hex()) for i in range(size)]
    forged = [SimTx(size + i, _CLIENT.sign(b"something else").hex()) for i in range(bad)]
    return tuple(good + forged)


@cache
def tx_is_signed(tx: SimTx) -> bool:
    return verify(_CLIENT.public_hex, tx.message, bytes.fromhex(tx.sig))


@dataclass(frozen=True)
class SimBlock:
    height: int
    prev: str
    proposer: str
    time_ms: int
    txs: tuple[SimTx, ...]
    salt: int = 0  # lets a Byzantine proposer make a different block at the same height

    @cached_property
    def hash(self) -> BlockHash:
        body = {
            "height": self.height,
            "prev": self.prev,
            "proposer": self.proposer,
            "time_ms": self.time_ms,
            "txs": [t.id for t in self.txs],
            "salt": self.salt,
        }
        return BlockHash(hashlib.sha256(canonical(body)).hexdigest())


class SimApp:
    """One validator's view: its committed chain, its clock, and the transactions it knows."""

    def __init__(
        self, owner: str, clock: Callable[[], int], chain: list[tuple[int, SimBlock]]
    ) -> None:
        self.owner = owner
        self.clock = clock
        self.chain = chain  # (round decided, block), shared with the node's disk

    @property
    def tip(self) -> SimBlock | None:
        return self.chain[-1][1] if self.chain else None

    def propose(self, height: int, round_: int) -> SimBlock:
        tip = self.tip
        pool = tx_pool()
        good = [t for t in pool if tx_is_signed(t)]
        start = (height * 7 + round_ * 3) % len(good)
        txs = tuple(good[(start + i) % len(good)] for i in range(4))
        last_time = tip.time_ms if tip else 0
        return SimBlock(
            height,
            tip.hash if tip else "genesis",
            self.owner,
            max(self.clock(), last_time + 1),
            txs,
        )

    def is_valid(self, block: object, *, certified: bool = False) -> bool:
        if not isinstance(block, SimBlock):
            return False
        tip = self.tip
        expected_height = len(self.chain) + 1
        # Verify it extends our chain, time moves forward but not past our clock, txs are signed
        if block.height != expected_height or block.prev != (tip.hash if tip else "genesis"):
            return False
        if tip is not None and block.time_ms <= tip.time_ms:
            return False
        if not certified and block.time_ms > self.clock() + MAX_SKEW_MS:
            return False
        return all(tx_is_signed(t) for t in block.txs)
