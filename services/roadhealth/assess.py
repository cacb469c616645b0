"""Turn stored windows into segment conditions, confirmed potholes, chain facts and alerts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from chain.encoding import hash_json
from services.roadhealth.analysis import (
    SegmentEstimate,
    combine_window_estimates,
    pothole_confidence,
    window_length_m,
)
from services.roadhealth.clustering import cluster_positions
from services.roadhealth.condition import Decision, Pending, Seen, decide_condition
from services.roadhealth.models import (
    RhAlert,
    RhConditionWatch,
    RhPothole,
    RhPotholeReport,
    RhSegment,
    RhWindow,
)
from services.roadhealth.runtime import Runtime, Settings

DAY_S = 86_400.0
OPEN_STATUSES = ("candidate", "confirmed")


def refresh_segments(rt: Runtime, session: Session, segments: Sequence[RhSegment]) -> None:
    """Recompute each segment's IRI and class; attest and alert when the class changes."""
    for segment in sorted(segments, key=lambda s: s.id):
        _refresh_segment(rt, session, segment)


def _refresh_segment(rt: Runtime, session: Session, segment: RhSegment) -> None:
    query = (
        select(
            RhWindow.t0,
            RhWindow.device,
            RhWindow.iri,
            RhWindow.iri_log_std,
            RhWindow.hash,
            RhWindow.speed_mps,
            RhWindow.samples,
            RhWindow.rate_hz,
        )
        .where(RhWindow.segment == segment.id, RhWindow.iri.is_not(None))
        # Newest first, ties by hash: the same windows in the same order whichever process
        # stored which first (recent_windows keeps at most the newest settings.recent_windows)
        .order_by(RhWindow.t0.desc(), RhWindow.hash.desc())
    )
    if rt.settings.recent_windows > 0:
        query = query.limit(rt.settings.recent_windows)
    rows = session.execute(query).all()[::-1]
    if not rows:
        if segment.windows:  # its windows were all matched elsewhere since: no estimate left
            segment.iri = segment.iri_lower = segment.iri_upper = None
            segment.windows, segment.updated_at = 0, time.time()
        return
    watch = session.get(RhConditionWatch, segment.id)
    judged = judge_segment(
        rt.settings,
        current=segment.condition,
        pending=None if watch is None else Pending(watch.candidate, watch.since_t0),
        rows=rows,
    )
    if judged is None:
        return
    estimate, decision, recent = judged
    segment.iri, segment.iri_lower, segment.iri_upper = estimate.iri, estimate.lower, estimate.upper
    segment.windows, segment.updated_at = estimate.windows, time.time()
    _keep_pending(session, segment.id, watch, decision.pending)
    before = segment.condition
    condition = decision.change_to
    if condition is None:
        return
    evidence = hash_json(sorted(r.hash for r in recent))
    receipt = _attest(
        rt,
        "record_condition",
        {
            "segment": segment.id,
            "condition": condition,
            "iri_milli": round(estimate.iri * 1000),
            "lower_milli": min(round(estimate.lower * 1000), round(estimate.iri * 1000)),
            "upper_milli": max(round(estimate.upper * 1000), round(estimate.iri * 1000)),
            "windows": estimate.windows,
            "evidence": evidence,
        },
    )
    segment.condition, segment.condition_tx = condition, receipt["tx"]
    if before is not None or condition == "poor":
        raise_alert(
            rt,
            session,
            kind="condition_changed",
            segment=segment.id,
            chain_tx=receipt["tx"],
            data={
                "segment": segment.id,
                "name": segment.name,
                "before": before,
                "after": condition,
                "iri_m_per_km": round(estimate.iri, 3),
                "iri_90": [round(estimate.lower, 3), round(estimate.upper, 3)],
                "windows": estimate.windows,
                # What made the change sustained (condition.py); times are the windows' own
                "windows_since_change": decision.windows_since,
                "vehicles_since_change": decision.vehicles_since,
                "as_of_t0": max(float(r.t0) for r in recent),
            },
        )


def judge_segment(
    settings: Settings, *, current: str | None, pending: Pending | None, rows: Sequence[Any]
) -> tuple[SegmentEstimate, Decision, list[Any]] | None:
    """A segment's estimate from its windows, and whether its class changes now (the first
    class from `settings.change.min_windows` windows of `min_vehicles` vehicles on, later ones
    by `settings.change`); also the windows used. Rows carry t0, device, iri, iri_log_std,
    speed_mps, samples and rate_hz."""
    if not rows:
        return None
    recent = recent_windows(
        rows, horizon_s=settings.horizon_days * DAY_S, limit=settings.recent_windows
    )
    estimate = combine_window_estimates(
        [float(r.iri) for r in recent],
        [float(r.iri_log_std or 0.0) for r in recent],
        [window_length_m(r.speed_mps, r.samples, r.rate_hz) for r in recent],
    )
    if estimate is None:
        return None
    if estimate.windows < settings.min_windows:
        return estimate, Decision(None, pending), recent
    if current is None:
        # A first class from as much evidence as a change needs, so it is rarely corrected
        vehicles = len({r.device for r in recent})
        if (
            estimate.windows < settings.change.min_windows
            or vehicles < settings.change.min_vehicles
        ):
            return estimate, Decision(None, None), recent
        return estimate, Decision(settings.thresholds.classify(estimate.iri), None), recent
    decision = decide_condition(
        settings.change,
        settings.thresholds,
        current=current,
        iri=estimate.iri,
        pending=pending,
        windows=[Seen(float(r.t0), str(r.device)) for r in recent],
    )
    return estimate, decision, recent


def recent_windows(rows: Sequence[Any], *, horizon_s: float, limit: int) -> list[Any]:
    """A segment's windows an estimate uses: within the horizon of its newest, at most the
    newest `limit` of them (0: no limit), oldest first."""
    ordered = sorted(rows, key=lambda r: float(r.t0))
    newest = float(ordered[-1].t0)
    inside = [r for r in ordered if float(r.t0) >= newest - horizon_s]
    return inside[-limit:] if limit > 0 else inside


def _keep_pending(
    session: Session, segment: str, watch: RhConditionWatch | None, pending: Pending | None
) -> None:
    if pending is None:
        if watch is not None:
            session.delete(watch)
    elif watch is None:
        session.add(RhConditionWatch(segment=segment, **vars(pending)))
    else:
        watch.candidate, watch.since_t0 = pending.candidate, pending.since_t0


def file_report(
    rt: Runtime,
    session: Session,
    *,
    segment: str,
    window_id: int,
    device: str,
    message_hash: str,
    t0: float,
    chainage_m: float,
    peak_mps2: float,
) -> None:
    """Store a pothole report of a matched window as a candidate of its own; regroup_segment
    then decides which pothole it belongs to, with every other open report of its segment."""
    lat, lon = rt.index.position_at(segment, chainage_m)
    pothole = RhPothole(
        id=f"{segment}:{round(chainage_m * 10)}:{message_hash[:8]}",
        segment=segment,
        chainage_m=chainage_m,
        lat=lat,
        lon=lon,
        reports=0,
        vehicles=0,
        confidence=0.0,
        status="candidate",
        first_seen=t0,
        last_seen=t0,
    )
    session.add(pothole)
    session.add(
        RhPotholeReport(
            window_id=window_id,
            pothole=pothole.id,
            device=device,
            chainage_m=chainage_m,
            peak_mps2=peak_mps2,
            message_hash=message_hash,
            t0=t0,
        )
    )


def withdraw_reports(session: Session, window_ids: Sequence[int]) -> dict[str, str]:
    """Delete the pothole reports of these windows (matched again, they report anew); a
    candidate left without reports goes too. Returns the potholes that lost reports and
    remain, with their segments."""
    if not window_ids:
        return {}
    rows = session.execute(
        select(RhPotholeReport.id, RhPotholeReport.pothole).where(
            RhPotholeReport.window_id.in_(window_ids)
        )
    ).all()
    if not rows:
        return {}
    session.execute(delete(RhPotholeReport).where(RhPotholeReport.id.in_([r.id for r in rows])))
    ids = sorted({r.pothole for r in rows})
    still = set(
        session.scalars(select(RhPotholeReport.pothole).where(RhPotholeReport.pothole.in_(ids)))
    )
    remaining = {}
    for pothole in session.scalars(select(RhPothole).where(RhPothole.id.in_(ids))):
        if pothole.id not in still and pothole.status == "candidate":
            session.delete(pothole)
        else:
            remaining[pothole.id] = pothole.segment
    return remaining


def regroup_segment(rt: Runtime, session: Session, segment: str) -> set[str]:
    """Cluster the open reports of a segment into potholes (clustering.py) and return the
    potholes whose reports changed. A confirmed pothole keeps its id (the chain knows it):
    the group holding it is filed under it, and a group holding two is split between them;
    other groups go to the candidate already holding most of their reports."""
    session.flush()
    rows = session.execute(
        select(RhPotholeReport, RhPothole)
        .join(RhPothole, RhPothole.id == RhPotholeReport.pothole)
        .where(RhPothole.segment == segment, RhPothole.status.in_(OPEN_STATUSES))
        .order_by(RhPotholeReport.id)
    ).all()
    if not rows:
        return set()
    reports = [r for r, _ in rows]
    potholes = {p.id: p for _, p in rows}
    labels = cluster_positions(
        [r.chainage_m for r in reports], sigma_m=rt.settings.report_position_sigma_m
    )
    groups: dict[int, list[RhPotholeReport]] = {}
    for report, label in zip(reports, labels, strict=True):
        groups.setdefault(label, []).append(report)
    kept: set[str] = set()
    for members in groups.values():
        for heir, part in _heirs(members, potholes):
            for report in part:
                report.pothole = heir.id
            kept.add(heir.id)
    for pothole in potholes.values():
        if pothole.id not in kept and pothole.status == "candidate":
            session.delete(pothole)
    session.flush()
    return kept


def _heirs(
    members: list[RhPotholeReport], potholes: dict[str, RhPothole]
) -> list[tuple[RhPothole, list[RhPotholeReport]]]:
    """Which pothole each report of one group is filed under."""
    confirmed = sorted({r.pothole for r in members if potholes[r.pothole].status == "confirmed"})
    if len(confirmed) > 1:
        nearest: dict[str, list[RhPotholeReport]] = {c: [] for c in confirmed}
        for r in members:
            best = min(confirmed, key=lambda c: abs(potholes[c].chainage_m - r.chainage_m))
            nearest[best].append(r)
        return [(potholes[c], part) for c, part in nearest.items() if part]
    if confirmed:
        return [(potholes[confirmed[0]], members)]
    held: dict[str, int] = {}
    for r in members:
        held[r.pothole] = held.get(r.pothole, 0) + 1
    heir = min(held, key=lambda c: (-held[c], potholes[c].first_seen, c))
    return [(potholes[heir], members)]


def refresh_potholes(rt: Runtime, session: Session, pothole_ids: Iterable[str]) -> None:
    """Recount reports; confirm (on chain, with an alert) once enough vehicles saw the pothole."""
    ids = sorted(set(pothole_ids))
    potholes = session.scalars(select(RhPothole).where(RhPothole.id.in_(ids))).all()
    filed: dict[str, list[RhPotholeReport]] = {}
    for report in session.scalars(
        select(RhPotholeReport).where(RhPotholeReport.pothole.in_(ids))
    ):  # in one order whatever the ids (so sums come out the same in every process)
        filed.setdefault(report.pothole, []).append(report)
    for pothole in sorted(potholes, key=lambda p: p.id):
        reports = sorted(filed.get(pothole.id, []), key=lambda r: (r.message_hash, r.chainage_m))
        if not reports:
            continue  # its reports went to a neighbouring confirmed pothole: keep it as it was
        devices = {r.device for r in reports}
        grew = len(devices) > pothole.vehicles
        pothole.reports, pothole.vehicles = len(reports), len(devices)
        pothole.chainage_m = sum(r.chainage_m for r in reports) / len(reports)
        pothole.lat, pothole.lon = rt.index.position_at(pothole.segment, pothole.chainage_m)
        pothole.last_seen = max(r.t0 for r in reports)
        pothole.confidence = pothole_confidence(len(devices), len(reports) - len(devices))
        if pothole.vehicles < rt.settings.pothole_min_vehicles or not grew:
            continue
        if pothole.status == "confirmed" and _attested_reports(rt, pothole.id) > pothole.reports:
            continue  # a report it lost (its window matched again elsewhere): the chain's stays
        receipt = _attest(
            rt,
            "confirm_pothole",
            {
                "pothole": pothole.id,
                "segment": pothole.segment,
                "chainage_dm": max(0, round(pothole.chainage_m * 10)),
                "reports": pothole.reports,
                "vehicles": pothole.vehicles,
                "confidence_pct": int(pothole.confidence * 100),
                "evidence": hash_json(sorted(r.message_hash for r in reports)),
            },
        )
        first = pothole.status == "candidate"
        pothole.status, pothole.confirmed_tx = "confirmed", receipt["tx"]
        if first:
            raise_alert(
                rt,
                session,
                kind="pothole_confirmed",
                segment=pothole.segment,
                chain_tx=receipt["tx"],
                data={
                    "pothole": pothole.id,
                    "segment": pothole.segment,
                    "lat": round(pothole.lat, 7),
                    "lon": round(pothole.lon, 7),
                    "chainage_m": round(pothole.chainage_m, 1),
                    "vehicles": pothole.vehicles,
                    "reports": pothole.reports,
                    "confidence": pothole.confidence,
                },
            )


def _attested_reports(rt: Runtime, pothole_id: str) -> int:
    """How many reports the chain's record of a confirmed pothole counts."""
    record = rt.chain.read(f"pothole:{pothole_id}")
    return 0 if record is None else int(record["reports"])


def raise_alert(
    rt: Runtime,
    session: Session,
    *,
    kind: str,
    segment: str,
    chain_tx: str | None,
    data: dict[str, Any],
) -> None:
    """Store an alert; the dispatcher delivers it (webhooks, MQTT) once the request commits."""
    session.add(
        RhAlert(
            kind=kind,
            segment=segment,
            data=data,
            chain_tx=chain_tx,
            created_at=time.time(),
            delivered=0,
            attempts=0,
            next_attempt_at=0.0,
            pending=1,
        )
    )


def _attest(rt: Runtime, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """A fact the service attests with its operator key; a refusal is reported, not hidden."""
    return rt.chain.attest(method, args)
