"""What several road-health features share: the day, a segment's row, its potholes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.roadhealth.errors import UnknownSegment
from services.roadhealth.models import RhPothole, RhSegment

DAY_S = 86_400.0


def segment_row(*, session: Session, segment_id: str) -> RhSegment:
    """The stored segment, or UnknownSegment."""
    row = session.get(RhSegment, segment_id)
    if row is None:
        raise UnknownSegment(f"no segment {segment_id!r}")
    return row


def potholes_by_segment(
    *,
    session: Session,
    include_candidates: bool,
    include_repaired: bool = False,
    include_dismissed: bool = False,
) -> dict[str, list[RhPothole]]:
    """The potholes (confirmed, and candidates, repaired or dismissed ones when asked) of each
    segment, along the road."""
    statuses = (
        ["confirmed"]
        + ["candidate"] * include_candidates
        + ["repaired"] * include_repaired
        + ["dismissed"] * include_dismissed
    )
    query = (
        select(RhPothole)
        .where(RhPothole.status.in_(statuses))
        .order_by(RhPothole.segment, RhPothole.chainage_m)
    )
    out: dict[str, list[RhPothole]] = {}
    for p in session.scalars(query):
        out.setdefault(p.segment, []).append(p)
    return out
