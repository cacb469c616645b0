"""What a validator persists before each vote (its last signed step, lock and valid value),
and reads back on restart so it never signs against what it signed before."""

from __future__ import annotations

import json
from typing import Any

from chain.consensus.candidate import Candidate
from chain.consensus.effects import SignedState
from chain.types import Round

LAST_SIGNED = "consensus_last_signed"  # the store's meta key
SAME_AS_LOCKED = "locked_value"  # a persisted valid_value that is the locked block


def signed_state_json(state: SignedState) -> dict[str, Any]:
    """The JSON a validator persists (LAST_SIGNED) before each vote; a valid block that is the
    locked one is written once."""

    def value(v: Any) -> Any:
        return None if v is None else v.to_json()

    return {
        "height": state.height,
        "round": state.round,
        "step": state.step,
        "block_hash": state.block_hash,
        "locked_round": state.locked_round,
        "locked_value": value(state.locked_value),
        "valid_round": state.valid_round,
        # Usually the locked block itself (a block's transactions are most of the bytes)
        "valid_value": (
            SAME_AS_LOCKED
            if state.valid_value is not None and state.valid_value is state.locked_value
            else value(state.valid_value)
        ),
        "votes": [list(v) for v in state.votes],
    }


def signed_state_from_json(raw: str) -> SignedState:
    """The state `signed_state_json` wrote, as persisted text."""
    data = json.loads(raw)

    def value(v: Any) -> Candidate | None:
        return None if v is None else Candidate.from_json(v)

    locked = value(data["locked_value"])
    valid = locked if data["valid_value"] == SAME_AS_LOCKED else value(data["valid_value"])
    return SignedState(
        data["height"],
        data["round"],
        data["step"],
        data["block_hash"],
        data["locked_round"],
        locked,
        data["valid_round"],
        valid,
        # Saved since the restart re-send (older state has none: only the last vote re-sent)
        tuple((Round(int(r)), int(st), h) for r, st, h in data.get("votes", [])),
    )
