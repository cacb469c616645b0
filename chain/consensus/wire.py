"""Consensus and sync messages as JSON on the wire."""

from __future__ import annotations

from typing import Any

from chain.consensus.candidate import Candidate
from chain.consensus.engine import Commit
from chain.consensus.messages import Message, Proposal, Vote
from chain.errors import EncodingError


def message_to_json(message: Message) -> dict[str, Any]:
    body = message.to_json()
    if isinstance(message, Proposal):
        body["block"] = message.value.to_json()
    return body


def message_from_json(body: Any) -> Message:
    try:
        if body["type"] == "vote":
            return Vote(
                body["kind"],
                int(body["height"]),
                int(body["round"]),
                body["block_hash"],
                str(body["validator"]),
                str(body["sig"]),
            )
        if body["type"] == "proposal":
            return Proposal(
                int(body["height"]),
                int(body["round"]),
                int(body["valid_round"]),
                str(body["block_hash"]),
                str(body["proposer"]),
                str(body["sig"]),
                Candidate.from_json(body["block"]),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise EncodingError(f"malformed consensus message: {exc}") from exc
    raise EncodingError(f"unknown consensus message type {body.get('type')!r}")


def commit_to_json(commit: Commit) -> dict[str, Any]:
    return {
        "block": commit.candidate.to_json(),
        "precommits": [v.to_json() for v in commit.precommits],
    }


def commit_from_json(body: Any) -> Commit:
    votes = tuple(message_from_json(v) for v in body["precommits"])
    if not all(isinstance(v, Vote) for v in votes):
        raise EncodingError("a commit's precommits must be votes")
    return Commit(Candidate.from_json(body["block"]), votes)  # type: ignore[arg-type]
