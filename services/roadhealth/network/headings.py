"""A window's heading from its own path, whatever order its device's windows arrive in.

A window heads towards its device's next window (seq + 1) when that one starts where the
window's travel leads, else it keeps the heading it arrived on, from its previous window
(seq - 1), when it starts where that one's travel leads; otherwise it has none. So a heading
depends on the window and its two neighbours only, and is worked out again when a neighbour
arrives later: the headings, and the matches that use them, come out the same however the
windows were batched and whichever process stored which batch first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.roadhealth.network.geo import bearing_deg, distance_m

HEADING_MAX_GAP_S = 60.0
HEADING_MIN_MOVE_M = 3.0
# How far a neighbour's start may lie from where a window's travel ends: GPS jitter on both
# fixes (3 sigma of a few metres each) plus a turn cutting the corner
HEADING_TRAVEL_SLACK_M = 15.0


@dataclass(frozen=True)
class Fix:
    """A window's start: its seq, time, position and the distance the window covers."""

    seq: int
    t0: float
    lat: float
    lon: float
    travel_m: float


def heading_between(a: Fix, b: Fix) -> float | None:
    """Bearing from a to b when b is where a's window leads: the next seq, soon after, about a
    window's travel away (a device that jumps elsewhere, e.g. after a gap, gives none)."""
    if b.seq != a.seq + 1 or abs(b.t0 - a.t0) > HEADING_MAX_GAP_S:
        return None
    moved = distance_m(a.lat, a.lon, b.lat, b.lon)
    if (
        moved < HEADING_MIN_MOVE_M
        or abs(moved - a.travel_m) > HEADING_TRAVEL_SLACK_M + 0.3 * a.travel_m
    ):
        return None
    return bearing_deg(a.lat, a.lon, b.lat, b.lon)


def heading_of(fixes: Mapping[int, Fix], seq: int) -> float | None:
    """The heading of one device's window `seq` among the windows of it known (by seq)."""
    here = fixes[seq]
    after, before = fixes.get(seq + 1), fixes.get(seq - 1)
    heading = None if after is None else heading_between(here, after)
    if heading is None and before is not None:
        heading = heading_between(before, here)
    return heading
