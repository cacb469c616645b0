"""What nodes send each other, as CBOR (RFC 8949) maps.

The wire only carries what is hashed and signed; it never replaces it. A transaction travels as
its canonical JSON bytes (its hash is SHA-256 of exactly those bytes), a header as its fields,
a vote or proposal as its fields and signature over canonical JSON (docs/protocol.md §8, §17).
A proposal is compact: its header and the ordered hashes of its transactions; a node resolves
them from what it holds and asks the peer for the rest. Block sync carries whole blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import cbor2

from chain.block import Header
from chain.consensus.candidate import Candidate, CompactBlock
from chain.consensus.messages import Message, Proposal, Vote
from chain.errors import ChainError, EncodingError
from chain.tx import Tx, tx_from_canonical
from chain.types import BlockHash, Height, PublicKey, Round, VoteKind

HASH_BYTES = 32


@dataclass(frozen=True)
class Commit:
    """A committed block as block sync carries it."""

    candidate: Candidate
    precommits: tuple[Vote, ...]


def dumps(body: dict[str, Any]) -> bytes:
    return bytes(cbor2.dumps(body))


def loads(data: bytes) -> dict[str, Any]:
    """A frame's map; anything else (or undecodable bytes) is an EncodingError."""
    try:
        body = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EncodingError(f"undecodable frame: {exc}") from exc
    if not isinstance(body, dict):
        raise EncodingError("a frame is a CBOR map")
    return body


# -- consensus messages ---------------------------------------------------------------------


def message_to_wire(message: Message) -> dict[str, Any]:
    body = message.to_json()
    if isinstance(message, Proposal):
        value = message.value
        body["block"] = {
            "header": value.header.to_json(),
            "tx_hashes": [bytes.fromhex(tx.hash) for tx in value.txs],
        }
    return body


def message_from_wire(body: Any) -> Message:
    """A vote, or a proposal whose value is a CompactBlock still to be resolved."""
    try:
        if body["type"] == "vote":
            block_hash = body["block_hash"]
            return Vote(
                _vote_kind(body["kind"]),
                Height(_int(body["height"])),
                Round(_int(body["round"])),
                None if block_hash is None else BlockHash(_str(block_hash)),
                PublicKey(_str(body["validator"])),
                _str(body["sig"]),
            )
        if body["type"] == "proposal":
            block = body["block"]
            hashes = block["tx_hashes"]
            if not isinstance(hashes, list) or not all(
                isinstance(h, bytes) and len(h) == HASH_BYTES for h in hashes
            ):
                raise EncodingError("tx_hashes must be a list of 32-byte strings")
            compact = CompactBlock(
                Header.from_json(block["header"]), tuple(h.hex() for h in hashes)
            )
            return Proposal(
                Height(_int(body["height"])),
                Round(_int(body["round"])),
                Round(_int(body["valid_round"])),
                BlockHash(_str(body["block_hash"])),
                PublicKey(_str(body["proposer"])),
                _str(body["sig"]),
                compact,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise EncodingError(f"malformed consensus message: {exc}") from exc
    raise EncodingError(f"unknown consensus message type {body.get('type')!r}")


# -- transactions and blocks ----------------------------------------------------------------


def txs_to_wire(txs: list[Tx]) -> list[bytes]:
    return [tx.encode() for tx in txs]


def txs_from_wire(items: Any) -> list[Tx]:
    if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
        raise EncodingError("txs must be a list of canonical transaction bytes")
    try:
        return [tx_from_canonical(raw) for raw in items]
    except ChainError as exc:
        raise EncodingError(f"bad transaction from a peer: {exc}") from exc


def hashes_from_wire(items: Any) -> list[str]:
    if not isinstance(items, list) or not all(
        isinstance(h, bytes) and len(h) == HASH_BYTES for h in items
    ):
        raise EncodingError("hashes must be a list of 32-byte strings")
    return [h.hex() for h in items]


def commit_to_wire(commit: Commit) -> dict[str, Any]:
    return {
        "header": commit.candidate.header.to_json(),
        "txs": txs_to_wire(list(commit.candidate.txs)),
        "precommits": [v.to_json() for v in commit.precommits],
    }


def commit_from_wire(body: Any) -> Commit:
    try:
        votes = tuple(message_from_wire(v) for v in body["precommits"])
        if not all(isinstance(v, Vote) for v in votes):
            raise EncodingError("a commit's precommits must be votes")
        header = Header.from_json(body["header"])
        txs = tuple(txs_from_wire(body["txs"]))
    except (KeyError, TypeError) as exc:
        raise EncodingError(f"malformed commit: {exc}") from exc
    return Commit(Candidate(header, txs), votes)  # type: ignore[arg-type]


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodingError(f"expected an integer, got {type(value).__name__}")
    return value


def _vote_kind(value: Any) -> VoteKind:
    if value == "prevote" or value == "precommit":
        return cast(VoteKind, value)
    raise EncodingError(f"a vote is a prevote or a precommit, not {value!r}")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise EncodingError(f"expected a string, got {type(value).__name__}")
    return value
