"""Road-health domain: segments, condition views, priorities, alerts and proofs (devices in
services.roadhealth.devices)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.roadhealth import schemas
from services.roadhealth.devices import device_view
from services.roadhealth.errors import (
    OutOfRange,
    UnknownDevice,
    UnknownReading,
    UnknownSegment,
)
from services.roadhealth.geo import Segment, parse_feature_collection
from services.roadhealth.locks import lock_network, lock_segments, network_version
from services.roadhealth.models import (
    RhAlert,
    RhPothole,
    RhPotholeReport,
    RhSegment,
    RhWebhook,
    RhWindow,
)
from services.roadhealth.runtime import Runtime
from services.roadhealth.wire import MAX_SEQ, audit_path, has_valid_signature

DEMO_NETWORK = Path(__file__).with_name("demo") / "network.geojson"
SEGMENTS_PER_TX = 200
DAY_S = 86_400.0


# -- segments -------------------------------------------------------------------------------


def import_segments(
    *, rt: Runtime, session: Session, doc: Any, requested_by: str, wait: bool = True
) -> schemas.ImportResult:
    """Register a FeatureCollection's segments on the chain (relayed) and store them.

    Without `wait` (the demo network, loaded before the suite's block producer runs) the
    transaction is only admitted to the node's persistent mempool and commits once blocks flow.
    """
    segments = parse_feature_collection(doc)
    network = lock_network(session)  # one import at a time, whichever process runs it
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
    existing = {row.id: row for row in lock_segments(session, (s.id for s in segments))}
    for seg in segments:
        row = existing.get(seg.id)
        if row is None:
            row = RhSegment(id=seg.id, windows=0)
            session.add(row)
        row.name, row.geometry, row.properties = seg.name, seg.geometry, seg.properties
        row.length_m, row.geometry_hash, row.registered_tx = seg.length_m, seg.geometry_hash, tx
    network.version += 1  # every process reloads its index before it matches again
    session.flush()
    reload_index(rt, session)
    return schemas.ImportResult(
        segments=len(segments), registered_tx=tx, ids=[s.id for s in segments]
    )


def load_demo_network(*, rt: Runtime, session: Session) -> bool:
    """On first run (no segments yet), import the demo network shipped with the suite; of
    several processes starting at once on a new database, the first does."""
    lock_network(session)
    if session.scalars(select(RhSegment.id).limit(1)).first() is not None:
        return False
    doc = json.loads(DEMO_NETWORK.read_text(encoding="utf-8"))
    import_segments(rt=rt, session=session, doc=doc, requested_by=rt.ctx.operator_org, wait=False)
    return True


def reload_index(rt: Runtime, session: Session) -> None:
    """Build the segment index from the segments stored, noting the network's version."""
    version = network_version(session)
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


def _segment(session: Session, segment_id: str) -> RhSegment:
    row = session.get(RhSegment, segment_id)
    if row is None:
        raise UnknownSegment(f"no segment {segment_id!r}")
    return row


def _pothole_feature(p: RhPothole, models: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": p.id,
        "geometry": {"type": "Point", "coordinates": [round(p.lon, 7), round(p.lat, 7)]},
        "properties": {
            "segment": p.segment,
            "status": p.status,
            "chainage_m": round(p.chainage_m, 1),
            "reports": p.reports,
            "vehicles": p.vehicles,
            "confidence": p.confidence,
            "confirmed_tx": p.confirmed_tx,
            "models": (models or {}).get(p.id, []),
        },
    }


def _segment_feature(
    row: RhSegment, potholes: list[RhPothole], models: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": row.id,
        "geometry": row.geometry,
        "properties": {
            **row.properties,
            "name": row.name,
            "length_m": round(row.length_m, 1),
            "geometry_hash": row.geometry_hash,
            "condition": row.condition,
            "iri_m_per_km": None if row.iri is None else round(row.iri, 3),
            "iri_90": None
            if row.iri_lower is None or row.iri_upper is None
            else [round(row.iri_lower, 3), round(row.iri_upper, 3)],
            "windows": row.windows,
            "condition_tx": row.condition_tx,
            "potholes": [_pothole_feature(p, models) for p in potholes],
        },
    }


def segments_geojson(*, session: Session, include_candidates: bool = False) -> dict[str, Any]:
    """Every segment with its condition and its potholes, as a FeatureCollection."""
    potholes = _potholes_by_segment(session, include_candidates)
    models = _report_models(session, potholes)
    rows = session.scalars(select(RhSegment).order_by(RhSegment.id)).all()
    return {
        "type": "FeatureCollection",
        "features": [_segment_feature(r, potholes.get(r.id, []), models) for r in rows],
    }


def segment_geojson(*, session: Session, segment_id: str) -> dict[str, Any]:
    row = _segment(session, segment_id)
    potholes = _potholes_by_segment(session, True).get(row.id, [])
    return _segment_feature(row, potholes, _report_models(session, {row.id: potholes}))


def potholes_geojson(*, session: Session, include_candidates: bool) -> dict[str, Any]:
    found = _potholes_by_segment(session, include_candidates)
    models = _report_models(session, found)
    return {
        "type": "FeatureCollection",
        "features": [_pothole_feature(p, models) for group in found.values() for p in group],
    }


def _report_models(session: Session, potholes: dict[str, list[RhPothole]]) -> dict[str, list[str]]:
    """Ids of the classifier models that judged the listed potholes' reports (analysis.py)."""
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


def _potholes_by_segment(session: Session, include_candidates: bool) -> dict[str, list[RhPothole]]:
    query = select(RhPothole).order_by(RhPothole.segment, RhPothole.chainage_m)
    if not include_candidates:
        query = query.where(RhPothole.status == "confirmed")
    out: dict[str, list[RhPothole]] = {}
    for p in session.scalars(query):
        out.setdefault(p.segment, []).append(p)
    return out


def segment_series(
    *, session: Session, segment_id: str, bucket_s: int, since: float | None, until: float | None
) -> schemas.SeriesResponse:
    """IRI per time bucket (geometric mean of windows, 90% interval) and pothole reports."""
    _segment(session, segment_id)
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
    from services.roadhealth.analysis import combine_window_estimates, window_length_m

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


# -- priorities -----------------------------------------------------------------------------


def priorities(*, rt: Runtime, session: Session, limit: int) -> list[schemas.PriorityItem]:
    """Segments ranked for repair: roughness, worsening trend, confirmed potholes, traffic.

    score = 40 * IRI / poor_threshold (capped at 3x) + 20 * max(0, trend in m/km per 30 days)
            + 15 * sum of confirmed potholes' confidence, all times (1 + log10(1 + windows/day)).
    Traffic multiplies, so a rough road many vehicles use ranks above an equally rough lane.
    """
    if not 1 <= limit <= 1000:
        raise OutOfRange("limit must be 1..1000")
    poor = rt.settings.thresholds.poor_above
    potholes = _potholes_by_segment(session, False)
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


# -- alerts and webhooks --------------------------------------------------------------------


def list_alerts(*, session: Session, segment: str | None, limit: int) -> list[schemas.AlertView]:
    if not 1 <= limit <= 1000:
        raise OutOfRange("limit must be 1..1000")
    query = select(RhAlert).order_by(RhAlert.id.desc()).limit(limit)
    if segment is not None:
        _segment(session, segment)
        query = query.where(RhAlert.segment == segment)
    return [
        schemas.AlertView(
            id=a.id,
            kind=a.kind,
            segment=a.segment,
            data=a.data,
            chain_tx=a.chain_tx,
            created_at=a.created_at,
            delivered=a.delivered,
            attempts=a.attempts,
            last_error=a.last_error,
        )
        for a in session.scalars(query)
    ]


def add_webhook(*, session: Session, url: str, created_by: str) -> schemas.WebhookView:
    row = RhWebhook(url=url, created_by=created_by, created_at=time.time())
    session.add(row)
    session.flush()
    return _webhook_view(row)


def list_webhooks(*, session: Session) -> list[schemas.WebhookView]:
    return [_webhook_view(w) for w in session.scalars(select(RhWebhook).order_by(RhWebhook.id))]


def _webhook_view(row: RhWebhook) -> schemas.WebhookView:
    return schemas.WebhookView(id=row.id, url=row.url, created_by=row.created_by)


# -- proofs ---------------------------------------------------------------------------------


def reading_proof(*, rt: Runtime, session: Session, device: str, seq: int) -> schemas.ReadingProof:
    """A reading from its device signature to a committed block, checkable offline."""
    # Verify the number can be a reading's at all (the database cannot hold a larger one)
    if not 0 <= seq <= MAX_SEQ:
        raise UnknownReading(f"no reading {seq} of device {device!r}: seq is 0..{MAX_SEQ}")
    window = session.scalars(
        select(RhWindow).where(RhWindow.device == device, RhWindow.seq == seq)
    ).first()
    if window is None:
        raise UnknownReading(f"no reading {seq} of device {device!r}")
    from services.roadhealth.models import RhBatch

    batch = session.get(RhBatch, window.anchor_tx)
    tx_bundle = rt.chain.tx_proof(window.anchor_tx)
    if batch is None or tx_bundle is None:
        raise UnknownReading(f"the anchor of reading {seq} of {device!r} is not available")
    payload = json.loads(window.payload)
    bundle = {
        **tx_bundle,
        "kind": "record",
        "record": {
            "hash": window.hash,
            "index": window.leaf_index,
            "size": batch.count,
            "path": audit_path(batch.leaves, window.leaf_index),
        },
    }
    device_bundle = rt.chain.device_proof(device)
    record = device_bundle.get("value")
    if record is None:
        raise UnknownDevice(f"device {device!r} is no longer registered")
    return schemas.ReadingProof(
        payload=payload,
        message_hash=window.hash,
        device=device_view(device, record),
        signature_valid=has_valid_signature(payload, record["pub_key"]),
        anchor={
            "tx": window.anchor_tx,
            "root": window.root,
            "leaf_index": window.leaf_index,
            "count": batch.count,
        },
        bundle=bundle,
        device_bundle=device_bundle,
    )
