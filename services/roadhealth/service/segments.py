"""Segments: import a GeoJSON network (registered on the chain), the demo network, the
segment index, and a segment's roughness over time."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.roadhealth import schemas
from services.roadhealth.assessment.windows import combine_window_estimates, window_length_m
from services.roadhealth.errors import OutOfRange
from services.roadhealth.models import RhPothole, RhPotholeReport, RhSegment, RhWindow
from services.roadhealth.network.geo import Segment, parse_feature_collection
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.common import DAY_S, segment_row
from services.roadhealth.service.locks import lock_network, lock_segments, network_version

DEMO_NETWORK = Path(__file__).parent.parent / "demo" / "network.geojson"
SEGMENTS_PER_TX = 200


def import_segments(
    *, rt: Runtime, session: Session, doc: Any, requested_by: str, wait: bool = True
) -> schemas.ImportResult:
    """Register a FeatureCollection's segments on the chain (relayed) and store them.

    Without `wait` (the demo network, loaded before the suite's block producer runs) the
    transaction is only admitted to the node's persistent mempool and commits once blocks flow.
    """
    segments = parse_feature_collection(doc)
    network = lock_network(session=session)  # one import at a time, whichever process runs it
    tx = None
    for start in range(0, len(segments), SEGMENTS_PER_TX):
        chunk = segments[start : start + SEGMENTS_PER_TX]
        receipt = rt.chain.attest(
            "register_segments",
            {
                "segments": [
                    {
                        "segment": s.id,
                        "geometry_hash": s.geometry_hash,
                        "length_m": max(1, round(s.length_m)),
                    }
                    for s in chunk
                ],
                "requested_by": requested_by,
            },
            what="the segments",
            wait=wait,
        )
        if not wait:
            tx = receipt["hash"]
            continue
        tx = receipt["tx"]
    existing = {
        row.id: row for row in lock_segments(session=session, segments=(s.id for s in segments))
    }
    for seg in segments:
        row = existing.get(seg.id)
        if row is None:
            row = RhSegment(id=seg.id, windows=0)
            session.add(row)
        row.name, row.geometry, row.properties = seg.name, seg.geometry, seg.properties
        row.length_m, row.geometry_hash, row.registered_tx = seg.length_m, seg.geometry_hash, tx
    network.version += 1  # every process reloads its index before it matches again
    session.flush()
    reload_index(rt=rt, session=session)
    return schemas.ImportResult(
        segments=len(segments), registered_tx=tx, ids=[s.id for s in segments]
    )


def load_demo_network(*, rt: Runtime, session: Session) -> bool:
    """On first run (no segments yet), import the demo network shipped with the suite; of
    several processes starting at once on a new database, the first does."""
    lock_network(session=session)
    if session.scalars(select(RhSegment.id).limit(1)).first() is not None:
        return False
    doc = json.loads(DEMO_NETWORK.read_text(encoding="utf-8"))
    import_segments(rt=rt, session=session, doc=doc, requested_by=rt.ctx.operator_org, wait=False)
    return True


def reload_index(*, rt: Runtime, session: Session) -> None:
    """Build the segment index from the segments stored, noting the network's version."""
    version = network_version(session=session)
    rows = session.scalars(select(RhSegment).order_by(RhSegment.id)).all()
    rt.reindex(
        [
            Segment(
                r.id,
                r.name,
                tuple((float(c[0]), float(c[1])) for c in r.geometry["coordinates"]),
                dict(r.properties),
            )
            for r in rows
        ],
        version=version,
    )


def segment_series(
    *, session: Session, segment_id: str, bucket_s: int, since: float | None, until: float | None
) -> schemas.SeriesResponse:
    """IRI per time bucket (geometric mean of windows, 90% interval) and pothole reports."""
    segment_row(session=session, segment_id=segment_id)
    if not 60 <= bucket_s <= 366 * DAY_S:
        raise OutOfRange("bucket_s must be between 60 s and 366 days")
    if any(t is not None and not math.isfinite(t) for t in (since, until)):
        raise OutOfRange("since and until are Unix times in seconds (finite numbers)")
    if since is not None and until is not None and since > until:
        raise OutOfRange("since must not be after until")
    query = select(
        RhWindow.t0,
        RhWindow.iri,
        RhWindow.iri_log_std,
        RhWindow.id,
        RhWindow.speed_mps,
        RhWindow.samples,
        RhWindow.rate_hz,
    ).where(RhWindow.segment == segment_id)
    if since is not None:
        query = query.where(RhWindow.t0 >= since)
    if until is not None:
        query = query.where(RhWindow.t0 < until)
    rows = session.execute(query).all()
    reported = {
        r[0]
        for r in session.execute(
            select(RhPotholeReport.window_id)
            .join(RhPothole, RhPothole.id == RhPotholeReport.pothole)
            .where(RhPothole.segment == segment_id)
        )
    }
    buckets: dict[int, list[Any]] = {}
    for r in rows:
        buckets.setdefault(int(r.t0 // bucket_s), []).append(r)
    points = []
    for key in sorted(buckets):
        group = buckets[key]
        with_iri = [g for g in group if g.iri is not None]
        est = combine_window_estimates(
            [float(g.iri) for g in with_iri],
            [float(g.iri_log_std or 0) for g in with_iri],
            [window_length_m(g.speed_mps, g.samples, g.rate_hz) for g in with_iri],
        )
        points.append(
            schemas.SeriesPoint(
                start=float(key * bucket_s),
                windows=len(group),
                iri=None if est is None else round(est.iri, 3),
                iri_lower=None if est is None else round(est.lower, 3),
                iri_upper=None if est is None else round(est.upper, 3),
                pothole_reports=sum(1 for g in group if g.id in reported),
            )
        )
    return schemas.SeriesResponse(segment=segment_id, bucket_s=bucket_s, points=points)
