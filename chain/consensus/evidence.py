"""Evidence of misbehaviour: two votes or two proposals by one validator for one step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.consensus.messages import Proposal, Vote


@dataclass(frozen=True)
class DuplicateVote:
    first: Vote
    second: Vote

    @property
    def offender(self) -> str:
        return self.first.validator

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "duplicate_vote",
            "validator": self.offender,
            "height": self.first.height,
            "round": self.first.round,
            "kind": self.first.kind,
            "votes": [self.first.to_json(), self.second.to_json()],
        }


@dataclass(frozen=True)
class ConflictingProposal:
    first: Proposal
    second: Proposal

    @property
    def offender(self) -> str:
        return self.first.proposer

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "conflicting_proposal",
            "validator": self.offender,
            "height": self.first.height,
            "round": self.first.round,
            "proposals": [self.first.to_json(), self.second.to_json()],
        }


Evidence = DuplicateVote | ConflictingProposal
