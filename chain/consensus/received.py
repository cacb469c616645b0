"""What a validator has received at its current height, and the voting power behind it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from chain.consensus.messages import Proposal, ValidatorSet, Vote

# validator -> block hash (None for nil) -> vote, for one round and one vote kind
RoundVotes = dict[str, dict[str | None, Vote]]


@dataclass
class Received:
    """Everything a validator received for its current height."""

    proposals: dict[int, Proposal] = field(default_factory=dict)
    # round -> validator -> block hash (None for nil) -> vote. A validator that signs two values
    # counts towards each: two quorums still share more than f validators, so they cannot both
    # form unless more than f are Byzantine, and honest peers need such votes as proof of lock.
    prevotes: dict[int, dict[str, dict[str | None, Vote]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    precommits: dict[int, dict[str, dict[str | None, Vote]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    senders: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    fired: set[tuple[str, int]] = field(default_factory=set)
    validity: dict[str, bool] = field(default_factory=dict)

    def once(self, rule: str, round_: int) -> bool:
        """True the first time `rule` fires in `round_` at this height (the paper's "for the
        first time" conditions)."""
        key = (rule, round_)
        if key in self.fired:
            return False
        self.fired.add(key)
        return True


def power_any(validators: ValidatorSet, votes: RoundVotes) -> int:
    """Voting power of the validators that voted at all."""
    return sum(validators.power(v) for v in votes)


def power_for(validators: ValidatorSet, votes: RoundVotes, block_hash: str | None) -> int:
    """Voting power of the validators that voted for `block_hash` (None: nil)."""
    return sum(validators.power(v) for v, cast in votes.items() if block_hash in cast)
