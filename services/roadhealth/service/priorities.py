"""Maintenance priorities: segments ranked for repair, with the reasons."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.roadhealth import schemas
from services.roadhealth.errors import OutOfRange
from services.roadhealth.models import RhSegment, RhWindow
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.common import DAY_S, potholes_by_segment


def priorities(*, rt: Runtime, session: Session, limit: int) -> list[schemas.PriorityItem]:
    """Segments ranked for repair: roughness, worsening trend, confirmed potholes, traffic.

    score = 40 * IRI / poor_threshold (capped at 3x) + 20 * max(0, trend in m/km per 30 days)
            + 15 * sum of confirmed potholes' confidence, all times (1 + log10(1 + windows/day)).
    Traffic multiplies, so a rough road many vehicles use ranks above an equally rough lane.
    """
    if not 1 <= limit <= 1000:
        raise OutOfRange("limit must be 1..1000")
    poor = rt.settings.thresholds.poor_above
    potholes = potholes_by_segment(session=session, include_candidates=False)
    items: list[dict[str, Any]] = []
    for row in session.scalars(select(RhSegment)):
        stats = session.execute(
            select(func.count(RhWindow.id), func.min(RhWindow.t0), func.max(RhWindow.t0)).where(
                RhWindow.segment == row.id
            )
        ).one()
        count, first, last = int(stats[0]), stats[1], stats[2]
        days = max(1.0, (float(last) - float(first)) / DAY_S) if count else 1.0
        per_day = count / days
        trend = _trend(session, row.id)
        confirmed = potholes.get(row.id, [])
        reasons = []
        score = 0.0
        if row.iri is not None:
            score += 40.0 * min(3.0, row.iri / poor)
            reasons.append(f"IRI {row.iri:.2f} m/km ({row.condition or 'unclassed'})")
        if trend is not None and trend > 0:
            score += 20.0 * trend
            reasons.append(f"worsening {trend:.2f} m/km per 30 days")
        if confirmed:
            score += 15.0 * sum(p.confidence for p in confirmed)
            reasons.append(f"{len(confirmed)} confirmed pothole(s)")
        score *= 1.0 + math.log10(1.0 + per_day)
        items.append(
            {
                "segment": row.id,
                "name": row.name,
                "score": round(score, 2),
                "condition": row.condition,
                "iri": None if row.iri is None else round(row.iri, 3),
                "trend_m_per_km_per_30d": None if trend is None else round(trend, 3),
                "confirmed_potholes": len(confirmed),
                "windows_per_day": round(per_day, 2),
                "reasons": reasons,
            }
        )
    items.sort(key=lambda i: (-float(i["score"]), str(i["segment"])))
    return [schemas.PriorityItem(rank=n + 1, **item) for n, item in enumerate(items[:limit])]


def _trend(session: Session, segment_id: str) -> float | None:
    """Least-squares slope of log-window IRI over time, as m/km per 30 days at the mean IRI."""
    rows = session.execute(
        select(RhWindow.t0, RhWindow.iri).where(
            RhWindow.segment == segment_id, RhWindow.iri.is_not(None)
        )
    ).all()
    if len(rows) < 6:
        return None
    t = np.array([float(r.t0) for r in rows])
    if t.max() - t.min() < DAY_S:
        return None  # less than a day of data says nothing about a trend
    y = np.log(np.array([float(r.iri) for r in rows]))
    slope = float(np.polyfit(t / (30 * DAY_S), y, 1)[0])
    return slope * float(np.exp(y.mean()))
