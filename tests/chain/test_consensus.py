"""The consensus state machine on its own: quorums, proposer rotation, signing guard, evidence."""

from __future__ import annotations

from typing import Any

import pytest

from chain.block import PRECOMMIT
from chain.consensus.effects import (
    GOSSIP,
    PROPOSE,
    Broadcast,
    Decide,
    FoundEvidence,
    Persist,
    SignedState,
    Timeouts,
)
from chain.consensus.evidence import ConflictingProposal, DuplicateVote
from chain.consensus.machine import Tendermint
from chain.consensus.messages import (
    PREVOTE,
    STEPS,
    Proposal,
    ValidatorSet,
    Vote,
    sign_proposal,
    sign_vote,
)
from chain.crypto import SigningKey, verify
from chain.sim.app import SimBlock
from chain.types import BlockHash, Height, Round

CHAIN = "unit-chain"
KEYS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
VALIDATORS = ValidatorSet.of({k.public_hex: 1 for k in KEYS})


class FixedApp:
    def __init__(self, valid: bool = True) -> None:
        self.valid = valid

    def propose(self, height: int, round_: int) -> SimBlock:
        return SimBlock(height, "genesis", "x", 1000 + round_, ())

    def is_valid(self, value: Any, *, certified: bool = False) -> bool:
        return self.valid


def machine(index: int, *, restored: Any = None, app: Any = None) -> Tendermint:
    return Tendermint(
        chain_id=CHAIN,
        validators=VALIDATORS,
        height=1,
        app=app or FixedApp(),
        verify=verify,
        signer=KEYS[index],
        restored=restored,
    )


def key_of(public_hex: str) -> SigningKey:
    return next(k for k in KEYS if k.public_hex == public_hex)


@pytest.mark.parametrize(
    ("n", "quorum", "one_honest"),
    [(1, 1, 1), (3, 3, 2), (4, 3, 2), (5, 4, 2), (7, 5, 3), (10, 7, 4), (100, 67, 34)],
)
def test_quorums_for_any_n(n: int, quorum: int, one_honest: int) -> None:
    validators = ValidatorSet.of({f"{i:064x}": 1 for i in range(n)})
    assert min(p for p in range(n + 1) if validators.has_quorum(p)) == quorum
    assert min(p for p in range(n + 1) if validators.has_one_honest(p)) == one_honest


def test_proposer_rotates_by_round_and_height_weighted_by_power() -> None:
    by_round = {VALIDATORS.proposer(1, r) for r in range(4)}
    assert by_round == {k.public_hex for k in KEYS}
    weighted = ValidatorSet.of({"a" * 64: 3, "b" * 64: 1})
    picks = [weighted.proposer(h, 0) for h in range(400)]
    assert 250 < picks.count("a" * 64) < 350


def test_timeouts_grow_with_the_round() -> None:
    timeouts = Timeouts(propose_ms=100, delta_ms=50)
    assert [timeouts.of(PROPOSE, r) for r in range(3)] == [100, 150, 200]


def test_four_validators_decide_and_persist_before_they_broadcast() -> None:
    machines = [machine(i) for i in range(4)]
    inbox: list[Any] = []
    decisions: list[Decide] = []
    for m in machines:
        effects = m.start()
        for i, effect in enumerate(effects):
            if isinstance(effect, Broadcast):
                # every signed message is preceded by the Persist that records it
                assert any(isinstance(e, Persist) for e in effects[:i])
                inbox.append(effect.message)
    while inbox:
        message = inbox.pop(0)
        for m in machines:
            for effect in m.on_message(message):
                if isinstance(effect, Broadcast):
                    inbox.append(effect.message)
                elif isinstance(effect, Decide):
                    decisions.append(effect)
    assert len(decisions) == 4 and len({d.value.hash for d in decisions}) == 1
    assert all(len({v.validator for v in d.precommits}) >= 3 for d in decisions)


def test_a_validator_checks_each_foreign_signature_once_and_never_its_own() -> None:
    # Gossip delivers each vote several times, and each copy's signature was checked again (an
    # SM2 check costs five Ed25519 ones); so was each message a validator had just signed
    checked: list[list[tuple[str, bytes]]] = [[] for _ in range(4)]

    def counting(index: int) -> Any:
        def check(public_hex: str, message: bytes, signature: bytes) -> bool:
            checked[index].append((public_hex, message))
            return verify(public_hex, message, signature)

        return check

    machines = [
        Tendermint(
            chain_id=CHAIN,
            validators=VALIDATORS,
            height=1,
            app=FixedApp(),
            verify=counting(i),
            signer=KEYS[i],
        )
        for i in range(4)
    ]
    inbox = [e.message for m in machines for e in m.start() if isinstance(e, Broadcast)]
    decided = set()
    while inbox:
        message = inbox.pop(0)
        for i, m in enumerate(machines):
            for _ in range(3):  # every message arrives three times
                for effect in m.on_message(message):
                    if isinstance(effect, Broadcast):
                        inbox.append(effect.message)
                    elif isinstance(effect, Decide):
                        decided.add(i)
    assert decided == {0, 1, 2, 3}
    for i, seen in enumerate(checked):
        assert seen, "foreign messages are checked"
        assert KEYS[i].public_hex not in {signer for signer, _ in seen}
        assert len(seen) == len(set(seen)), f"validator {i} checked a signature twice"


def test_a_restarted_validator_never_signs_a_different_value_for_a_step_it_signed() -> None:
    proposer_index = next(
        i for i, k in enumerate(KEYS) if k.public_hex == VALIDATORS.proposer(1, 0)
    )
    first = machine(proposer_index)
    effects = first.start()
    persisted = [e.state for e in effects if isinstance(e, Persist)][-1]
    proposal = next(
        e.message for e in effects if isinstance(e, Broadcast) and isinstance(e.message, Proposal)
    )

    class OtherValueApp(FixedApp):
        def propose(self, height: int, round_: int) -> SimBlock:
            return SimBlock(height, "genesis", "x", 9999, ())  # a different block after the restart

    again = machine(proposer_index, restored=persisted, app=OtherValueApp())
    out = again.start()
    assert not any(isinstance(e, Broadcast) and isinstance(e.message, Proposal) for e in out)
    assert persisted.block_hash == proposal.block_hash


def test_double_votes_and_conflicting_proposals_become_evidence() -> None:
    observer = machine(0)
    observer.start()
    liar = KEYS[1]
    a = sign_vote(liar, CHAIN, PREVOTE, Height(1), Round(0), BlockHash("aa" * 32))
    b = sign_vote(liar, CHAIN, PREVOTE, Height(1), Round(0), BlockHash("bb" * 32))
    observer.on_message(a)
    evidence = [e.evidence for e in observer.on_message(b) if isinstance(e, FoundEvidence)]
    assert isinstance(evidence[0], DuplicateVote) and evidence[0].offender == liar.public_hex
    assert evidence[0].to_json()["type"] == "duplicate_vote"
    proposer = key_of(VALIDATORS.proposer(1, 0))
    h1, r0, none = Height(1), Round(0), Round(-1)
    p1 = sign_proposal(proposer, CHAIN, h1, r0, SimBlock(1, "genesis", "x", 1, ()), none)
    p2 = sign_proposal(proposer, CHAIN, h1, r0, SimBlock(1, "genesis", "x", 2, ()), none)
    fresh = machine(0 if proposer is not KEYS[0] else 1)
    fresh.on_message(p1)
    found = [e.evidence for e in fresh.on_message(p2) if isinstance(e, FoundEvidence)]
    assert isinstance(found[0], ConflictingProposal)


def test_messages_with_bad_signatures_or_from_strangers_are_ignored() -> None:
    m = machine(0)
    m.start()
    stranger = SigningKey.from_seed(b"s" * 32)
    aa, bb = BlockHash("aa" * 32), BlockHash("bb" * 32)
    assert m.on_message(sign_vote(stranger, CHAIN, PREVOTE, Height(1), Round(0), aa)) == []
    vote = sign_vote(KEYS[1], CHAIN, PREVOTE, Height(1), Round(0), aa)
    forged = Vote(vote.kind, vote.height, vote.round, bb, vote.validator, vote.sig)
    assert m.on_message(forged) == []
    assert KEYS[1].public_hex not in m._h.prevotes[0]


def test_invalid_proposals_get_nil_prevotes() -> None:
    voters = [machine(i, app=FixedApp(valid=False)) for i in range(4)]
    proposer = next(
        m for m in voters if m.signer and m.signer.public_hex == VALIDATORS.proposer(1, 0)
    )
    proposal = next(e.message for e in proposer.start() if isinstance(e, Broadcast))
    other = next(m for m in voters if m is not proposer)
    other.start()
    votes = [e.message for e in other.on_message(proposal) if isinstance(e, Broadcast)]
    assert votes and votes[0].block_hash is None


def test_a_restarted_validator_resends_the_vote_it_signed_and_keeps_its_step() -> None:
    """Its vote may never have left before the crash; without it a round can stay a vote short."""
    proposer_index = next(
        i for i, k in enumerate(KEYS) if k.public_hex == VALIDATORS.proposer(1, 0)
    )
    proposal = next(e.message for e in machine(proposer_index).start() if isinstance(e, Broadcast))
    voter_index = (proposer_index + 1) % 4
    before = machine(voter_index)
    before.start()
    effects = before.on_message(proposal)
    persisted = [e.state for e in effects if isinstance(e, Persist)][-1]
    prevote = next(e.message for e in effects if isinstance(e, Broadcast))
    assert isinstance(prevote, Vote) and prevote.block_hash == proposal.block_hash

    again = machine(voter_index, restored=persisted)
    out = again.start()
    resent = [e.message for e in out if isinstance(e, Broadcast)]
    assert resent == [prevote]
    first_broadcast = next(i for i, e in enumerate(out) if isinstance(e, Broadcast))
    assert any(isinstance(e, Persist) for e in out[:first_broadcast])
    assert again.step == PREVOTE
    # its propose timeout no longer tries (and silently fails) to prevote nil over it
    assert not [e for e in again.on_timeout(PROPOSE, 1, 0) if isinstance(e, Broadcast)]


def test_a_restarted_validator_resends_every_vote_it_signed_at_the_height() -> None:
    """Its precommit of an earlier round may be the one a peer still waits for."""
    r0, r1 = Round(0), Round(1)
    persisted = SignedState(
        Height(1),
        r1,
        STEPS[PREVOTE],
        None,
        votes=(
            (r0, STEPS[PREVOTE], None),
            (r0, STEPS[PRECOMMIT], None),
            (r1, STEPS[PREVOTE], None),
        ),
    )
    again = machine(2, restored=persisted)
    sent = [e.message for e in again.start() if isinstance(e, Broadcast)]
    assert [(v.kind, v.round, v.block_hash) for v in sent if isinstance(v, Vote)] == [
        (PREVOTE, 0, None),
        (PRECOMMIT, 0, None),
        (PREVOTE, 1, None),
    ]
    # and it still refuses to sign anything else for a step it signed
    assert not [e for e in again.on_timeout(PROPOSE, 1, 1) if isinstance(e, Broadcast)]


def test_gossip_resends_the_precommits_of_earlier_rounds() -> None:
    """A peer that missed one precommit of round 0 must still be able to leave round 0."""
    m = machine(0)
    m.start()
    precommits = [sign_vote(k, CHAIN, PRECOMMIT, Height(1), Round(0), None) for k in KEYS[1:]]
    for vote in precommits:
        m.on_message(vote)
    m.on_timeout(PRECOMMIT, 1, 0)
    assert m.round == 1
    gossip = [e.message for e in m.on_timeout(GOSSIP, 1, 1) if isinstance(e, Broadcast)]
    assert set(precommits) <= set(gossip)


def test_a_lone_validator_decides_each_height_without_waiting_for_a_timeout() -> None:
    """With no peer to prompt it, its own proposal and votes are enough (it used to wait out
    the propose timeout at every height, 3-4 s a block)."""
    alone = ValidatorSet.of({KEYS[0].public_hex: 1})
    m = Tendermint(
        chain_id=CHAIN, validators=alone, height=1, app=FixedApp(), verify=verify, signer=KEYS[0]
    )
    decided = [e for e in m.start() if isinstance(e, Decide)]
    assert [(d.height, d.round) for d in decided] == [(1, 0)]
    decided = [e for e in m.advance(alone) if isinstance(e, Decide)]
    assert [(d.height, d.round) for d in decided] == [(2, 0)]


def test_a_vote_from_the_wire_is_a_prevote_or_a_precommit() -> None:
    """A peer's vote of another kind is refused as malformed when it is decoded, before the
    state machine sees it; a good one round-trips with its typed fields."""
    from chain.consensus.wire import dumps, loads, message_from_wire, message_to_wire
    from chain.errors import EncodingError

    vote = sign_vote(KEYS[1], CHAIN, PRECOMMIT, Height(3), Round(1), BlockHash("ab" * 32))
    body = loads(dumps(message_to_wire(vote)))
    assert message_from_wire(body) == vote
    with pytest.raises(EncodingError, match="a vote is a prevote or a precommit, not 'commit'"):
        message_from_wire({**body, "kind": "commit"})
