"""Segment condition: a segment's IRI from its recent windows, and its class, which changes
only on a sustained change (assessment/condition.py), attested on the chain with an alert."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Select, bindparam, select, union_all
from sqlalchemy.orm import Session

from chain.encoding import hash_json
from services.roadhealth.assessment.condition import Decision, Pending, Seen, decide_condition
from services.roadhealth.assessment.windows import (
    SegmentEstimate,
    combine_window_estimates,
    window_length_m,
)
from services.roadhealth.models import RhConditionWatch, RhSegment, RhWindow
from services.roadhealth.runtime import Runtime, Settings
from services.roadhealth.service.alerts import raise_alert
from services.roadhealth.service.common import DAY_S

WINDOW_COLUMNS = (
    RhWindow.t0,
    RhWindow.device,
    RhWindow.iri,
    RhWindow.iri_log_std,
    RhWindow.hash,
    RhWindow.speed_mps,
    RhWindow.samples,
    RhWindow.rate_hz,
)
# Segments read in one statement, each a member of its UNION ALL (SQLite allows 500)
SEGMENTS_PER_STATEMENT = 100


def refresh_segments(*, rt: Runtime, session: Session, segments: Sequence[RhSegment]) -> None:
    """Recompute each segment's IRI and class; attest and alert when the class changes. The
    segments' windows are read in one statement per SEGMENTS_PER_STATEMENT of them, their
    pending changes in one."""
    ids = sorted({s.id for s in segments})
    if not ids:
        return
    rows = recent_rows(session=session, ids=ids, limit=rt.settings.recent_windows)
    watches = {
        w.segment: w
        for w in session.scalars(select(RhConditionWatch).where(RhConditionWatch.segment.in_(ids)))
    }
    for segment in sorted(segments, key=lambda s: s.id):
        _refresh_segment(rt, session, segment, rows.get(segment.id, []), watches.get(segment.id))


def recent_rows(*, session: Session, ids: list[str], limit: int) -> dict[str, list[Any]]:
    """The windows with an IRI of each segment, oldest first: the newest `limit` of them (0:
    all), ties by hash, so the same windows in the same order whichever process stored which
    first. Each segment's are read from the newest end of its part of WINDOWS_NEWEST, so a call
    costs the windows it returns, whatever the segments' history."""
    out: dict[str, list[Any]] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), SEGMENTS_PER_STATEMENT):
        chunk = wanted[start : start + SEGMENTS_PER_STATEMENT]
        params: dict[str, Any] = {f"segment_{n}": segment for n, segment in enumerate(chunk)}
        query = _newest_windows(len(chunk), limited=limit > 0)
        for row in session.execute(query, {**params, "limit": limit}):
            out.setdefault(row.segment, []).append(row)
    return out


@functools.cache
def _newest_windows(segments: int, *, limited: bool) -> Select[Any]:
    """The newest windows of `segments` segments (parameters segment_0, ... and limit), oldest
    first: one ORDER BY ... LIMIT per segment, each a search of WINDOWS_NEWEST from its newest
    end. (Ranking every window of the segments with row_number() read and sorted their whole
    history on every ingest.) Built once per shape: building a statement of 100 subqueries cost
    more than running it."""
    each = []
    for n in range(segments):
        newest = (
            select(*WINDOW_COLUMNS, RhWindow.segment)
            .where(RhWindow.segment == bindparam(f"segment_{n}"), RhWindow.iri.is_not(None))
            .order_by(RhWindow.t0.desc(), RhWindow.hash.desc())
        )
        if limited:
            newest = newest.limit(bindparam("limit", type_=Integer))
        each.append(select(newest.subquery()))
    merged = union_all(*each).subquery()
    return select(merged).order_by(merged.c.segment, merged.c.t0, merged.c.hash)


def _refresh_segment(
    rt: Runtime,
    session: Session,
    segment: RhSegment,
    rows: list[Any],
    watch: RhConditionWatch | None,
) -> None:
    if not rows:
        if segment.windows:  # its windows were all matched elsewhere since: no estimate left
            segment.iri = segment.iri_lower = segment.iri_upper = None
            segment.windows, segment.updated_at = 0, time.time()
        return
    judged = judge_segment(
        settings=rt.settings,
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
    receipt = rt.chain.attest(
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
            rt=rt,
            session=session,
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
    *, settings: Settings, current: str | None, pending: Pending | None, rows: Sequence[Any]
) -> tuple[SegmentEstimate, Decision, list[Any]] | None:
    """A segment's estimate from its windows, and whether its class changes now (the first
    class from `settings.change.min_windows` windows of `min_vehicles` vehicles on, later ones
    by `settings.change`); also the windows used. Rows carry t0, device, iri, iri_log_std,
    speed_mps, samples and rate_hz."""
    if not rows:
        return None
    recent = recent_windows(
        rows=rows, horizon_s=settings.horizon_days * DAY_S, limit=settings.recent_windows
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


def recent_windows(*, rows: Sequence[Any], horizon_s: float, limit: int) -> list[Any]:
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
