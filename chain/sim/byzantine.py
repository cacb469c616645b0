"""The messages Byzantine validators forge: a second proposal, a re-signed vote, a bad signature.

Pure functions of the message and the forger's key; the world decides who receives what
(chain/sim/world.py, `_broadcast`).
"""

from __future__ import annotations

from chain.consensus.messages import Message, Proposal, Vote, sign_proposal, sign_vote
from chain.crypto import SigningKey
from chain.sim.app import SimBlock, tx_pool
from chain.sim.scenario import CHAIN_ID
from chain.types import BlockHash


def other_proposal(key: SigningKey, proposal: Proposal, *, salt: int) -> Proposal:
    """An equivocating twin of `proposal`: the same height and round, another block."""
    value = proposal.value
    other = SimBlock(
        value.height,
        value.prev,
        value.proposer,
        value.time_ms,
        tuple(reversed(value.txs)) + tx_pool()[-1:],
        salt=salt,
    )
    height, round_, valid_round = proposal.height, proposal.round, proposal.valid_round
    return sign_proposal(key, CHAIN_ID, height, round_, other, valid_round)


def resign(key: SigningKey, vote: Vote, block_hash: BlockHash | None) -> Vote:
    """The same vote, validly signed, for another block (or nil)."""
    return sign_vote(key, CHAIN_ID, vote.kind, vote.height, vote.round, block_hash)


def corrupt(message: Message) -> Message:
    """The message with one hex digit of its signature changed: it must fail verification."""
    sig = ("0" if message.sig[0] != "0" else "1") + message.sig[1:]
    if isinstance(message, Vote):
        return Vote(
            message.kind, message.height, message.round, message.block_hash, message.validator, sig
        )
    return Proposal(
        message.height,
        message.round,
        message.valid_round,
        message.block_hash,
        message.proposer,
        sig,
        message.value,
    )
