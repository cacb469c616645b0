"""When a segment's condition class changes: hysteresis and persistence, as maintenance systems do.

A segment's IRI estimate moves with every window; near a class boundary it crosses back and
forth (issue 15: `west-st-2` changed class 15 times in 12 minutes, each change an alert and a
chain transaction). So a class changes only when the estimate has left the current class by a
margin beyond the boundary (a `margin` share of the threshold) and has stayed out long enough:
at least `min_windows` windows from `min_vehicles` distinct vehicles and `min_dwell_s` seconds
of window time since it first left. A return inside the margin cancels the pending change.
Time is the windows' own time (`t0`), so a replay gives the same answers as the live run.

Pure functions of their inputs; `assess.py` keeps the pending change in its own table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.roadhealth.assessment.windows import Thresholds

RANK = {"good": 0, "fair": 1, "poor": 2}


@dataclass(frozen=True)
class ChangeRules:
    """How far and how long an estimate must leave its class before the class changes."""

    margin: float = 0.08  # share of a threshold the estimate must pass it by
    min_windows: int = 8  # windows since the estimate left the class
    min_vehicles: int = 2  # distinct vehicles among them
    min_dwell_s: float = 300.0  # window time since it left

    @classmethod
    def immediate(cls) -> ChangeRules:
        """The rule before issue 15: every crossing of a threshold is a change."""
        return cls(margin=0.0, min_windows=0, min_vehicles=0, min_dwell_s=0.0)


@dataclass(frozen=True)
class Pending:
    """A change the estimate points to, not yet sustained: the class and when it began."""

    candidate: str
    since_t0: float


@dataclass(frozen=True)
class Decision:
    """`change_to` is the class to record now (None: keep); `pending` is what to remember."""

    change_to: str | None
    pending: Pending | None
    windows_since: int = 0
    vehicles_since: int = 0


@dataclass(frozen=True)
class Seen:
    """A window of the segment as the rule sees it: when, and from which device."""

    t0: float
    device: str


def classify_with_margin(
    thresholds: Thresholds, current: str | None, iri: float, margin: float
) -> str:
    """The class the estimate points to, leaving `current` only past a boundary by `margin`."""
    plain = thresholds.classify(iri)
    if current is None or plain == current:
        return plain
    if RANK[plain] > RANK[current]:
        worse = thresholds.classify(iri / (1.0 + margin))
        return worse if RANK[worse] > RANK[current] else current
    better = thresholds.classify(iri / (1.0 - margin)) if margin < 1.0 else current
    return better if RANK[better] < RANK[current] else current


def decide_condition(
    rules: ChangeRules,
    thresholds: Thresholds,
    *,
    current: str,
    iri: float,
    pending: Pending | None,
    windows: Sequence[Seen],
) -> Decision:
    """Whether a classed segment changes class now, given its estimate and recent windows."""
    candidate = classify_with_margin(thresholds, current, iri, rules.margin)
    if candidate == current:
        return Decision(None, None)
    newest = max(w.t0 for w in windows)
    worse = RANK[candidate] > RANK[current]
    if pending is None or (RANK[pending.candidate] > RANK[current]) != worse:
        # A new excursion, or one the other way: it begins with the newest window
        pending = Pending(candidate, newest)
    else:
        pending = Pending(candidate, pending.since_t0)
    since = [w for w in windows if w.t0 >= pending.since_t0]
    vehicles = len({w.device for w in since})
    sustained = (
        len(since) >= rules.min_windows
        and vehicles >= rules.min_vehicles
        and newest - pending.since_t0 >= rules.min_dwell_s
    )
    if sustained:
        return Decision(candidate, None, len(since), vehicles)
    return Decision(None, pending, len(since), vehicles)
