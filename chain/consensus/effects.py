"""What the consensus state machine and its driver exchange.

The machine (chain.consensus.machine) asks its application for values and their validity
(`App`), runs on `Timeouts`, and answers every input with effects the driver carries out in
order: `Persist` the `SignedState` before the `Broadcast` of what it records, schedule timeouts,
`Decide`, report evidence, ask a peer for committed blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from chain.block import PRECOMMIT
from chain.consensus.evidence import Evidence
from chain.consensus.messages import PREVOTE, STEPS, Message, Value, Vote
from chain.types import BlockHash, Height, Round, TimeoutKind, VoteKind

PROPOSE: Final = "propose"
# Not in the paper: the heartbeat that re-sends what a lossy network may drop
GOSSIP: Final = "gossip"
NIL = None


class App(Protocol):
    """What consensus asks of the application: a value to propose and whether one is valid."""

    def propose(self, height: int, round_: int) -> Value: ...

    def is_valid(self, value: Value, *, certified: bool = False) -> bool:
        """Whether to vote for `value`; `certified` values already carry 2f+1 precommits, so
        only the deterministic checks apply (not, say, the local clock)."""
        ...


@dataclass(frozen=True)
class Timeouts:
    """Timeouts grow linearly with the round, so rounds eventually outlast any delay."""

    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    delta_ms: int = 500

    def of(self, kind: TimeoutKind, round_: int) -> int:
        base = {
            PROPOSE: self.propose_ms,
            PREVOTE: self.prevote_ms,
            PRECOMMIT: self.precommit_ms,
            GOSSIP: self.prevote_ms,
        }[kind]
        return base + round_ * self.delta_ms


SignedVote = tuple[Round, int, BlockHash | None]  # round, step (STEPS), block hash (None: nil)
NO_LOCK: Final = Round(-1)  # the round of no lock and of no valid value
VOTE_KINDS: dict[int, VoteKind] = {STEPS[PREVOTE]: PREVOTE, STEPS[PRECOMMIT]: PRECOMMIT}


@dataclass(frozen=True)
class SignedState:
    """What a validator persists before it signs: the last step signed and its locks.

    `votes` lists (round, step, block hash) of every vote signed at this height, the last step
    included if it is a vote, so that a restarted validator can send them again (see
    `Tendermint._resume_signed`); a store that does not keep it loses only those re-sends.
    """

    height: Height
    round: Round
    step: int
    block_hash: BlockHash | None
    locked_round: Round = NO_LOCK
    locked_value: Any = None
    valid_round: Round = NO_LOCK
    valid_value: Any = None
    votes: tuple[SignedVote, ...] = ()


# -- effects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broadcast:
    message: Message


@dataclass(frozen=True)
class ScheduleTimeout:
    kind: TimeoutKind
    height: int
    round: int
    after_ms: int


@dataclass(frozen=True)
class Persist:
    state: SignedState


@dataclass(frozen=True)
class Decide:
    height: int
    round: int
    value: Any
    precommits: tuple[Vote, ...]


@dataclass(frozen=True)
class FoundEvidence:
    evidence: Evidence


@dataclass(frozen=True)
class RequestSync:
    height: int
    peer: str


Effect = Broadcast | ScheduleTimeout | Persist | Decide | FoundEvidence | RequestSync
