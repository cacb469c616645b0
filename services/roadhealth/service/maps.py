"""The map: segments with their condition and potholes, and the potholes, as GeoJSON."""

from __future__ import annotations

from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.roadhealth.models import (
    RhPothole,
    RhPotholeReport,
    RhPotholeWatch,
    RhSegment,
    RhWindow,
)
from services.roadhealth.schemas import (
    LineStringGeometry,
    PointGeometry,
    PotholeCollection,
    PotholeFeature,
    PotholeProperties,
    SegmentCollection,
    SegmentFeature,
    SegmentProperties,
)
from services.roadhealth.service.common import potholes_by_segment, segment_row


def _pothole_feature(
    p: RhPothole, models: dict[str, list[str]], watches: dict[str, RhPotholeWatch] | None = None
) -> PotholeFeature:
    watch = (watches or {}).get(p.id)
    return PotholeFeature(
        id=p.id,
        geometry=PointGeometry(type="Point", coordinates=(round(p.lon, 7), round(p.lat, 7))),
        properties=PotholeProperties(
            segment=p.segment,
            status=cast(Literal["candidate", "confirmed", "repaired", "dismissed"], p.status),
            chainage_m=round(p.chainage_m, 1),
            reports=p.reports,
            vehicles=p.vehicles,
            confidence=p.confidence,
            confirmed_tx=p.confirmed_tx,
            models=models.get(p.id, []),
            repaired_at=None if watch is None or p.status != "repaired" else watch.repaired_at,
            repaired_tx=None if watch is None else watch.repaired_tx,
            dismissed_at=None if watch is None or p.status != "dismissed" else watch.repaired_at,
        ),
    )


def _segment_feature(
    row: RhSegment, potholes: list[RhPothole], models: dict[str, list[str]]
) -> SegmentFeature:
    known: dict[str, Any] = {
        "name": row.name,
        "length_m": round(row.length_m, 1),
        "geometry_hash": row.geometry_hash,
        "condition": row.condition,
        "iri_m_per_km": None if row.iri is None else round(row.iri, 3),
        "iri_90": None
        if row.iri_lower is None or row.iri_upper is None
        else (round(row.iri_lower, 3), round(row.iri_upper, 3)),
        "windows": row.windows,
        "condition_tx": row.condition_tx,
        "potholes": [_pothole_feature(p, models) for p in potholes],
    }
    return SegmentFeature(
        id=row.id,
        geometry=LineStringGeometry.model_validate(row.geometry),
        properties=SegmentProperties.model_validate({**row.properties, **known}),
    )


def segments_geojson(*, session: Session, include_candidates: bool = False) -> SegmentCollection:
    """Every segment with its condition and its potholes, as a FeatureCollection."""
    potholes = potholes_by_segment(session=session, include_candidates=include_candidates)
    models = _report_models(session, potholes)
    rows = session.scalars(select(RhSegment).order_by(RhSegment.id)).all()
    return SegmentCollection(
        features=[_segment_feature(r, potholes.get(r.id, []), models) for r in rows]
    )


def segment_geojson(*, session: Session, segment_id: str) -> SegmentFeature:
    """One segment with its condition and all its open potholes (candidates too)."""
    row = segment_row(session=session, segment_id=segment_id)
    potholes = potholes_by_segment(session=session, include_candidates=True).get(row.id, [])
    return _segment_feature(row, potholes, _report_models(session, {row.id: potholes}))


def potholes_geojson(
    *,
    session: Session,
    include_candidates: bool,
    include_repaired: bool = False,
    include_dismissed: bool = False,
) -> PotholeCollection:
    """The confirmed potholes (and the candidates, the repaired and the dismissed ones when
    asked), as a FeatureCollection."""
    found = potholes_by_segment(
        session=session,
        include_candidates=include_candidates,
        include_repaired=include_repaired,
        include_dismissed=include_dismissed,
    )
    models = _report_models(session, found)
    closed = [
        p.id for group in found.values() for p in group if p.status in ("repaired", "dismissed")
    ]
    watches = {
        w.pothole: w
        for start in range(0, len(closed), 500)
        for w in session.scalars(
            select(RhPotholeWatch).where(RhPotholeWatch.pothole.in_(closed[start : start + 500]))
        )
    }
    return PotholeCollection(
        features=[_pothole_feature(p, models, watches) for group in found.values() for p in group]
    )


def _report_models(session: Session, potholes: dict[str, list[RhPothole]]) -> dict[str, list[str]]:
    """Ids of the classifier models that judged the listed potholes' reports
    (assessment/windows.py)."""
    ids = [p.id for group in potholes.values() for p in group]
    found: dict[str, set[str]] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(RhPotholeReport.pothole, RhWindow.anomalies)
            .join(RhWindow, RhWindow.id == RhPotholeReport.window_id)
            .where(RhPotholeReport.pothole.in_(ids[start : start + 500]))
        )
        for pothole, events in rows:
            models = {str(e["model"]) for e in events if e.get("reported") and e.get("model")}
            found.setdefault(pothole, set()).update(models)
    return {k: sorted(v) for k, v in found.items()}
