"""Consensus messages, their signing bytes, and the validator set they are counted against."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from chain.block import PRECOMMIT, vote_bytes
from chain.encoding import canonical
from chain.types import BlockHash, Height, PublicKey, Round, Step, VoteKind

PREVOTE: Final = "prevote"
PROPOSAL_DOMAIN = b"smartcity/proposal/v1\n"
STEPS: dict[Step, int] = {"propose": 0, PREVOTE: 1, PRECOMMIT: 2}


class Value(Protocol):
    """A proposed block as consensus sees it: something with a hash."""

    @property
    def hash(self) -> BlockHash: ...


class Signer(Protocol):
    @property
    def public_hex(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    def __call__(self, public_hex: str, message: bytes, signature: bytes) -> bool: ...


def proposal_bytes(
    chain_id: str, height: Height, round_: Round, block_hash: BlockHash, valid_round: Round
) -> bytes:
    body = {
        "chain_id": chain_id,
        "height": height,
        "round": round_,
        "block_hash": block_hash,
        "valid_round": valid_round,
    }
    return PROPOSAL_DOMAIN + canonical(body)


@dataclass(frozen=True)
class Vote:
    kind: VoteKind
    height: Height
    round: Round
    block_hash: BlockHash | None  # None votes nil
    validator: PublicKey
    sig: str

    def signed_bytes(self, chain_id: str) -> bytes:
        return vote_bytes(
            chain_id=chain_id,
            kind=self.kind,
            height=self.height,
            round_=self.round,
            block_hash=self.block_hash,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "vote",
            "kind": self.kind,
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "validator": self.validator,
            "sig": self.sig,
        }


@dataclass(frozen=True)
class Proposal:
    height: Height
    round: Round
    valid_round: Round  # NO_ROUND (-1): no valid value to re-propose
    block_hash: BlockHash
    proposer: PublicKey
    sig: str
    value: Any = field(compare=False, repr=False)

    def signed_bytes(self, chain_id: str) -> bytes:
        return proposal_bytes(chain_id, self.height, self.round, self.block_hash, self.valid_round)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "proposal",
            "height": self.height,
            "round": self.round,
            "valid_round": self.valid_round,
            "block_hash": self.block_hash,
            "proposer": self.proposer,
            "sig": self.sig,
        }


Message = Vote | Proposal


def sign_vote(
    signer: Signer,
    chain_id: str,
    kind: VoteKind,
    height: Height,
    round_: Round,
    block_hash: BlockHash | None,
) -> Vote:
    sig = signer.sign(
        vote_bytes(
            chain_id=chain_id, kind=kind, height=height, round_=round_, block_hash=block_hash
        )
    )
    return Vote(kind, height, round_, block_hash, PublicKey(signer.public_hex), sig.hex())


def sign_proposal(
    signer: Signer, chain_id: str, height: Height, round_: Round, value: Value, valid_round: Round
) -> Proposal:
    sig = signer.sign(proposal_bytes(chain_id, height, round_, value.hash, valid_round))
    return Proposal(
        height, round_, valid_round, value.hash, PublicKey(signer.public_hex), sig.hex(), value
    )


@dataclass(frozen=True)
class ValidatorSet:
    """Validators and voting powers; quorums for any n are computed here and nowhere else."""

    powers: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, powers: dict[str, int]) -> ValidatorSet:
        return cls(tuple(sorted(powers.items())))

    @property
    def total(self) -> int:
        return sum(p for _, p in self.powers)

    def power(self, validator: str) -> int:
        return dict(self.powers).get(validator, 0)

    def __contains__(self, validator: str) -> bool:
        return self.power(validator) > 0

    def has_quorum(self, power: int) -> bool:
        """More than two thirds of the voting power (the paper's 2f+1)."""
        return 3 * power > 2 * self.total

    def has_one_honest(self, power: int) -> bool:
        """More than one third of the voting power (the paper's f+1): at least one honest."""
        return 3 * power > self.total

    def proposer(self, height: int, round_: int) -> str:
        """Rotate the proposer by height and round, each validator as often as its power."""
        slots = [v for v, p in self.powers for _ in range(p)]
        # A seeded shuffle per height keeps rotation fair without favouring low keys
        start = int.from_bytes(hashlib.sha256(str(height).encode()).digest()[:8], "big")
        return slots[(start + round_) % len(slots)]
