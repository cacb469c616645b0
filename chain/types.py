"""Domain types shared by the chain's modules."""

from __future__ import annotations

from typing import Literal, NewType

Height = NewType("Height", int)
Round = NewType("Round", int)
TxHash = NewType("TxHash", str)  # lowercase hex SHA-256 of the signed transaction
BlockHash = NewType("BlockHash", str)  # lowercase hex SHA-256 of the canonical header
PublicKey = NewType("PublicKey", str)  # lowercase hex Ed25519 public key
OrgId = NewType("OrgId", str)

# A round's steps in order (Tendermint: propose, prevote, precommit), the votes among them, and
# the timeouts the state machine schedules (gossip: the heartbeat that re-sends what was lost)
Step = Literal["propose", "prevote", "precommit"]
VoteKind = Literal["prevote", "precommit"]
TimeoutKind = Literal["propose", "prevote", "precommit", "gossip"]
