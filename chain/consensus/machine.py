"""The Tendermint consensus algorithm for one validator, as a pure state machine.

Buchman, Kwon, Milosevic, "The latest gossip on BFT consensus" (arXiv:1807.04938), Algorithm 1.
Messages and timeouts go in, effects come out; no clock, network, randomness or storage inside.
The driver executes effects in order: a `Persist` always precedes the `Broadcast` of what it
records, so a validator that restarts never signs two different values for one step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chain.block import PRECOMMIT
from chain.consensus.effects import (
    GOSSIP,
    NIL,
    PROPOSE,
    VOTE_KINDS,
    App,
    Broadcast,
    Decide,
    Effect,
    FoundEvidence,
    Persist,
    RequestSync,
    ScheduleTimeout,
    SignedState,
    SignedVote,
    Timeouts,
)
from chain.consensus.evidence import ConflictingProposal, DuplicateVote
from chain.consensus.messages import (
    PREVOTE,
    STEPS,
    Message,
    Proposal,
    Signer,
    ValidatorSet,
    Value,
    Verifier,
    Vote,
    sign_proposal,
    sign_vote,
)
from chain.consensus.received import Received, power_any, power_for
from chain.types import BlockHash, Height, Round, Step, TimeoutKind, VoteKind

FIRST_ROUND = Round(0)
NO_ROUND = Round(-1)  # no lock, no valid value


class Tendermint:
    """One validator's (or observer's) consensus at one height at a time."""

    def __init__(
        self,
        *,
        chain_id: str,
        validators: ValidatorSet,
        height: int,
        app: App,
        verify: Verifier,
        signer: Signer | None = None,
        timeouts: Timeouts | None = None,
        restored: SignedState | None = None,
        max_future_heights: int = 2,
    ) -> None:
        self.chain_id = chain_id
        self.validators = validators
        self.height = Height(height)
        self.app = app
        self.verify = verify
        self.signer = signer
        self.timeouts = timeouts or Timeouts()
        self.max_future = max_future_heights
        self.round = FIRST_ROUND
        self.step: Step = PROPOSE
        self.locked_round, self.locked_value = NO_ROUND, None
        self.valid_round, self.valid_value = NO_ROUND, None
        self.last_signed: SignedState | None = None
        self.decided: Any = None
        self._h = Received()
        self._future: list[Message] = []
        self._sync_asked: set[str] = set()
        self._out: list[Effect] = []
        if restored is not None and restored.height == height:
            self.round = Round(restored.round)
            self.locked_round = Round(restored.locked_round)
            self.valid_round = Round(restored.valid_round)
            self.locked_value, self.valid_value = restored.locked_value, restored.valid_value
            self.last_signed = restored
        elif restored is not None and restored.height > height:
            self.last_signed = restored  # never sign below what was signed before the crash

    # -- inputs ---------------------------------------------------------------------------

    def start(self) -> list[Effect]:
        self._start_round(self.round)
        self._resume_signed()
        if self.decided is None:
            self._progress()
        return self._flush()

    def on_message(self, message: Message, *, sender: str | None = None) -> list[Effect]:
        """Take a proposal or vote from the network (signature checked here)."""
        if message.height < self.height:
            return []
        if message.height > self.height:
            self._buffer_future(message, sender)
            return self._flush()
        if self.decided is None and self._accept(message):
            self._progress()
        return self._flush()

    def on_timeout(self, kind: TimeoutKind, height: int, round_: int) -> list[Effect]:
        if height != self.height or round_ != self.round or self.decided is not None:
            return []
        if kind == GOSSIP:
            self._sync_asked.clear()
            self._regossip()
            self._out.append(
                ScheduleTimeout(GOSSIP, height, round_, self.timeouts.of(GOSSIP, round_))
            )
            return self._flush()
        if kind == PROPOSE and self.step == PROPOSE:
            self._vote(PREVOTE, NIL)
            self.step = PREVOTE
        elif kind == PREVOTE and self.step == PREVOTE:
            self._vote(PRECOMMIT, NIL)
            self.step = PRECOMMIT
        elif kind == PRECOMMIT:
            self._start_round(Round(round_ + 1))
        self._progress()
        return self._flush()

    def on_commit(self, value: Value, precommits: list[Vote]) -> list[Effect]:
        """A decision learnt by block sync: accepted only with a valid certificate and value."""
        if self.decided is not None or not precommits:
            return []
        round_ = precommits[0].round
        counted: dict[str, Vote] = {}
        for vote in precommits:
            # Verify each is a signed precommit for this value at this height and one round
            if (vote.kind, vote.height, vote.round, vote.block_hash) != (
                PRECOMMIT,
                self.height,
                round_,
                value.hash,
            ):
                return []
            if vote.validator in self.validators and self._signed(vote):
                counted[vote.validator] = vote
        power = sum(self.validators.power(v) for v in counted)
        if not self.validators.has_quorum(power) or not self.app.is_valid(value, certified=True):
            return []
        self._decide(round_, value, tuple(counted.values()))
        return self._flush()

    def advance(self, validators: ValidatorSet) -> list[Effect]:
        """After the driver committed the decision: start the next height with its validators."""
        self.height = Height(self.height + 1)
        self.validators = validators
        self.round, self.step, self.decided = FIRST_ROUND, PROPOSE, None
        self.locked_round, self.locked_value = NO_ROUND, None
        self.valid_round, self.valid_value = NO_ROUND, None
        self._h = Received()
        self._start_round(FIRST_ROUND)
        # Our own proposal counts at once: a lone validator has no peer whose message would
        # otherwise prompt it, and waited a propose timeout every height
        self._progress()
        pending, self._future = self._future, []
        for message in pending:
            if message.height == self.height and self.decided is None and self._accept(message):
                self._progress()
            elif message.height > self.height:
                self._future.append(message)
        return self._flush()

    # -- bookkeeping ----------------------------------------------------------------------

    def _regossip(self) -> None:
        """Re-send this round's messages we hold, the proof of our valid value's round, and the
        precommits of every earlier round of this height.

        Those precommits are how we left each earlier round (2f+1 of them start the timeout of
        lines 47-48 and 65-67; f+1 of a round pull a peer into it, lines 55-56), so a peer
        still in an earlier round can follow. The paper assumes every message a correct process
        received reaches all correct processes after GST; re-sending only the current round
        broke that once we moved on, and a peer that missed one precommit waited forever.
        """
        rounds = {self.round, self.valid_round} - {-1}
        for round_ in sorted(rounds):
            proposal = self._h.proposals.get(round_)
            if proposal is not None:
                self._out.append(Broadcast(proposal))
            for box in (self._h.prevotes[round_], self._h.precommits[round_]):
                self._out.extend(Broadcast(vote) for cast in box.values() for vote in cast.values())
        for earlier in sorted(r for r in list(self._h.precommits) if r < self.round):
            if earlier not in rounds:
                box = self._h.precommits[earlier]
                self._out.extend(Broadcast(vote) for cast in box.values() for vote in cast.values())

    def _flush(self) -> list[Effect]:
        out, self._out = self._out, []
        return out

    def _signed(self, message: Message) -> bool:
        signer = message.validator if isinstance(message, Vote) else message.proposer
        try:
            return self.verify(
                signer, message.signed_bytes(self.chain_id), bytes.fromhex(message.sig)
            )
        except ValueError:
            return False

    def _buffer_future(self, message: Message, sender: str | None) -> None:
        if message.height <= self.height + self.max_future and len(self._future) < 10_000:
            self._future.append(message)
        peer = sender or (message.validator if isinstance(message, Vote) else message.proposer)
        # A peer is ahead: ask it for the commits we lack (once per gossip period)
        if peer not in self._sync_asked:
            self._sync_asked.add(peer)
            self._out.append(RequestSync(self.height, peer))

    def _accept(self, message: Message, *, own: bool = False) -> bool:
        """Record a message from a validator if well-signed; report equivocation as evidence. A
        copy of one recorded is dropped unchecked, and `own` (just signed here) is not checked."""
        if isinstance(message, Proposal):
            # Verify the proposal comes from this round's proposer and is signed by it
            if message.proposer != self.validators.proposer(message.height, message.round):
                return False
            first = self._h.proposals.get(message.round)
            if first is not None and first.block_hash == message.block_hash:
                return False
            if message.value is None or message.value.hash != message.block_hash:
                return False
            if not (own or self._signed(message)):
                return False
            if first is not None:
                if first.block_hash != message.block_hash:
                    self._out.append(FoundEvidence(ConflictingProposal(first, message)))
                return False
            self._h.proposals[message.round] = message
            self._h.senders[message.round].add(message.proposer)
            return True
        # Verify the voter is a validator and the vote is signed by it
        if message.validator not in self.validators or message.kind not in (PREVOTE, PRECOMMIT):
            return False
        box = (self._h.prevotes if message.kind == PREVOTE else self._h.precommits)[message.round]
        mine = box.get(message.validator, {})
        if message.block_hash in mine or not (own or self._signed(message)):
            return False
        if mine:
            first_vote = next(iter(mine.values()))
            self._out.append(FoundEvidence(DuplicateVote(first_vote, message)))
        box.setdefault(message.validator, mine)[message.block_hash] = message
        self._h.senders[message.round].add(message.validator)
        return True

    def _locked_hash(self) -> BlockHash | None:
        return None if self.locked_value is None else self.locked_value.hash

    def _is_valid(self, value: Value) -> bool:
        cached = self._h.validity.get(value.hash)
        if cached is None:
            cached = self._h.validity[value.hash] = bool(self.app.is_valid(value))
        return cached

    def _may_sign(self, round_: Round, step: Step, block_hash: BlockHash | None) -> bool:
        last = self.last_signed
        if self.signer is None or self.signer.public_hex not in self.validators:
            return False
        if last is None:
            return True
        mine = (self.height, round_, STEPS[step])
        before = (last.height, last.round, last.step)
        if mine < before:
            return False
        return not (mine == before and last.block_hash != block_hash)

    def _record(self, round_: Round, step: Step, block_hash: BlockHash | None) -> None:
        last = self.last_signed
        votes = last.votes if last is not None and last.height == self.height else ()
        signed: SignedVote = (round_, STEPS[step], block_hash)
        if step != PROPOSE and signed not in votes:
            votes += (signed,)
        self.last_signed = SignedState(
            self.height,
            round_,
            STEPS[step],
            block_hash,
            self.locked_round,
            self.locked_value,
            self.valid_round,
            self.valid_value,
            votes,
        )
        self._out.append(Persist(self.last_signed))

    def _vote(self, kind: VoteKind, block_hash: BlockHash | None) -> None:
        signer = self.signer
        if signer is None or not self._may_sign(self.round, kind, block_hash):
            return
        self._record(self.round, kind, block_hash)
        vote = sign_vote(signer, self.chain_id, kind, self.height, self.round, block_hash)
        self._out.append(Broadcast(vote))
        self._accept(vote, own=True)

    def _propose(self, value: Value) -> None:
        signer = self.signer
        if signer is None or not self._may_sign(self.round, PROPOSE, value.hash):
            return
        self._record(self.round, PROPOSE, value.hash)
        proposal = sign_proposal(
            signer, self.chain_id, self.height, self.round, value, self.valid_round
        )
        self._out.append(Broadcast(proposal))
        self._accept(proposal, own=True)
        if self.valid_round >= 0:
            # Send the proof of lock with a re-proposal: peers that missed those prevotes need them
            for cast in self._h.prevotes[self.valid_round].values():
                if value.hash in cast:
                    self._out.append(Broadcast(cast[value.hash]))

    def _resume_signed(self) -> None:
        """After a restart, send again every vote signed at this height and take back the step.

        The paper's liveness needs each correct process's votes to reach every correct process
        (the timeouts of lines 34-35 and 47-48 fire only on 2f+1 votes of one round). A validator
        that crashed after persisting a vote may never have delivered it and no longer holds it
        to gossip: with f Byzantine peers silent, its round then stays a vote short forever.
        Signing a persisted (height, round, step, block hash) again is no equivocation, and
        what is signed here is on disk already, so persist-before-sign holds.
        """
        last, signer = self.last_signed, self.signer
        if signer is None or last is None or last.height != self.height:
            return
        votes = last.votes or ((last.round, last.step, last.block_hash),)
        self._out.append(Persist(last))
        for round_, step, block_hash in votes:
            kind = VOTE_KINDS.get(step)
            if kind is None:
                continue
            vote = sign_vote(signer, self.chain_id, kind, self.height, round_, block_hash)
            self._out.append(Broadcast(vote))
            self._accept(vote)
        if last.round == self.round and last.step in VOTE_KINDS:
            self.step = VOTE_KINDS[last.step]

    # -- the algorithm --------------------------------------------------------------------

    def _start_round(self, round_: Round) -> None:
        self.round, self.step = round_, PROPOSE
        me = self.signer.public_hex if self.signer else None
        if me is not None and me == self.validators.proposer(self.height, round_):
            value = (
                self.valid_value
                if self.valid_value is not None
                else self.app.propose(self.height, round_)
            )
            self._propose(value)
        self._out.append(
            ScheduleTimeout(PROPOSE, self.height, round_, self.timeouts.of(PROPOSE, round_))
        )
        self._out.append(
            ScheduleTimeout(GOSSIP, self.height, round_, self.timeouts.of(GOSSIP, round_))
        )

    def _progress(self) -> None:
        """Apply every rule whose condition holds, until none does."""
        rules: list[Callable[[], bool]] = [
            self._on_proposal,
            self._on_proposal_with_polka,
            self._on_any_prevotes,
            self._on_polka,
            self._on_nil_polka,
            self._on_any_precommits,
            self._on_commit_quorum,
            self._on_round_skip,
        ]
        while self.decided is None and any(rule() for rule in rules):
            pass

    def _on_proposal(self) -> bool:
        """Lines 22-27: a fresh proposal in the propose step gets our prevote."""
        proposal = self._h.proposals.get(self.round)
        if self.step != PROPOSE or proposal is None or proposal.valid_round != -1:
            return False
        value = proposal.value
        good = self._is_valid(value) and (
            self.locked_round == -1 or self._locked_hash() == value.hash
        )
        self._vote(PREVOTE, value.hash if good else NIL)
        self.step = PREVOTE
        return True

    def _on_proposal_with_polka(self) -> bool:
        """Lines 28-33: a re-proposal backed by 2f+1 prevotes from its valid round."""
        proposal = self._h.proposals.get(self.round)
        if self.step != PROPOSE or proposal is None or not 0 <= proposal.valid_round < self.round:
            return False
        vr = proposal.valid_round
        if not self.validators.has_quorum(
            power_for(self.validators, self._h.prevotes[vr], proposal.block_hash)
        ):
            return False
        value = proposal.value
        good = self._is_valid(value) and (
            self.locked_round <= vr or self._locked_hash() == value.hash
        )
        self._vote(PREVOTE, value.hash if good else NIL)
        self.step = PREVOTE
        return True

    def _on_any_prevotes(self) -> bool:
        """Lines 34-35: 2f+1 prevotes of any kind start the prevote timeout."""
        if self.step != PREVOTE or not self.validators.has_quorum(
            power_any(self.validators, self._h.prevotes[self.round])
        ):
            return False
        if not self._h.once("prevote-timeout", self.round):
            return False
        self._out.append(
            ScheduleTimeout(PREVOTE, self.height, self.round, self.timeouts.of(PREVOTE, self.round))
        )
        return True

    def _on_polka(self) -> bool:
        """Lines 36-43: 2f+1 prevotes for a valid proposal lock it (in prevote), mark it valid."""
        proposal = self._h.proposals.get(self.round)
        if proposal is None or self.step == PROPOSE:
            return False
        if not self.validators.has_quorum(
            power_for(self.validators, self._h.prevotes[self.round], proposal.block_hash)
        ):
            return False
        if not self._is_valid(proposal.value) or not self._h.once("polka", self.round):
            return False
        if self.step == PREVOTE:
            self.locked_value, self.locked_round = proposal.value, self.round
            self._vote(PRECOMMIT, proposal.block_hash)
            self.step = PRECOMMIT
        self.valid_value, self.valid_round = proposal.value, self.round
        return True

    def _on_nil_polka(self) -> bool:
        """Lines 44-46: 2f+1 nil prevotes: precommit nil."""
        if self.step != PREVOTE or not self.validators.has_quorum(
            power_for(self.validators, self._h.prevotes[self.round], NIL)
        ):
            return False
        self._vote(PRECOMMIT, NIL)
        self.step = PRECOMMIT
        return True

    def _on_any_precommits(self) -> bool:
        """Lines 47-48: 2f+1 precommits of any kind start the precommit timeout."""
        if not self.validators.has_quorum(
            power_any(self.validators, self._h.precommits[self.round])
        ):
            return False
        if not self._h.once("precommit-timeout", self.round):
            return False
        self._out.append(
            ScheduleTimeout(
                PRECOMMIT, self.height, self.round, self.timeouts.of(PRECOMMIT, self.round)
            )
        )
        return True

    def _on_commit_quorum(self) -> bool:
        """Lines 49-54: a proposal with 2f+1 precommits in its round is decided, in any round."""
        for round_, proposal in list(self._h.proposals.items()):
            votes = self._h.precommits[round_]
            if self.validators.has_quorum(
                power_for(self.validators, votes, proposal.block_hash)
            ) and self._is_valid(proposal.value):
                chosen = tuple(
                    cast[proposal.block_hash]
                    for cast in votes.values()
                    if proposal.block_hash in cast
                )
                self._decide(round_, proposal.value, chosen)
                return True
        return False

    def _on_round_skip(self) -> bool:
        """Lines 55-56: f+1 validators already in a higher round pull us there."""
        for round_ in sorted(r for r in self._h.senders if r > self.round):
            power = sum(self.validators.power(v) for v in self._h.senders[round_])
            if self.validators.has_one_honest(power):
                self._start_round(Round(round_))
                return True
        return False

    def _decide(self, round_: int, value: Any, precommits: tuple[Vote, ...]) -> None:
        self.decided = value
        self._out.append(Decide(self.height, round_, value, precommits))
