"""What one simulated run is: its scenario (seed, validators, faults), its result, its failure.

A `Scenario` replays exactly from its fields; `replay_command` is the `smartcity sim` line that
does it, and every `Failure` ends with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAIN_ID = "sim-chain"
BEHAVIOURS = ("equivocate", "double_vote", "phantom", "bad_sig", "replay", "silent", "twins")
FAULTS = ("delay", "loss", "duplicate", "reorder", "partition", "crash", "skew")


class Failure(AssertionError):
    """An invariant broke; the message ends with the command that replays the run."""


@dataclass(frozen=True)
class Scenario:
    seed: int
    validators: int = 4
    byzantine: int = 0
    behaviour: str | None = None  # one of BEHAVIOURS for every Byzantine validator; None: by seed
    faults: tuple[str, ...] | None = None  # None: a seeded choice
    observers: int = 0
    heights: int = 4
    heal_ms: int = 6_000
    latency_ms: tuple[int, int] = (5, 60)
    liveness_rounds: int = 12

    def replay_command(self) -> str:
        parts = [
            f"smartcity sim --seed {self.seed} --validators {self.validators}"
            f" --byzantine {self.byzantine}"
        ]
        if self.behaviour:
            parts.append(f"--behaviour {self.behaviour}")
        if self.faults is not None:
            parts.append("--faults " + (",".join(self.faults) or "none"))
        if self.observers:
            parts.append(f"--observers {self.observers}")
        parts.append(f"--heights {self.heights}")
        return " ".join(parts)


@dataclass
class SimResult:
    scenario: Scenario
    committed_heights: int
    virtual_ms: int
    messages: int
    evidence: list[dict[str, Any]]
    max_round: int
    commit_latency_ms: list[int] = field(default_factory=list)
    txs_committed: int = 0
