"""Repairs: an open pothole that vehicles drive over without reporting it is closed.

A window passes over a pothole when, matched with its direction of travel, it covers the
pothole's position with `pothole_pass_margin_m` of road either side. A pass that files no report
near the pothole is a clean pass (a report filed under it starts its count over, potholes.py).
Once `pothole_repair_passes` clean passes by `pothole_repair_vehicles` distinct vehicles have
come, and its last report is `pothole_repair_quiet_s` old in window time, the pothole closes. A
confirmed one is marked repaired and anchored on the chain (a record of counts and an evidence
hash over the clean windows' message hashes; no device, no reading) with a `pothole_repaired`
alert. A candidate never confirmed is marked dismissed, with neither: nothing was confirmed, so
nothing was repaired (a road authority reading "repaired" would look for a repair that never
happened). A closed pothole is never reopened: a later report at the same place starts a new
candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.encoding import hash_json
from services.roadhealth.errors import ChainRefused
from services.roadhealth.models import RhPothole, RhPotholeWatch
from services.roadhealth.runtime import Runtime, Settings
from services.roadhealth.service.alerts import raise_alert
from services.roadhealth.service.placement import Placed, is_reported
from services.roadhealth.service.potholes import OPEN_STATUSES, pothole_place, reach_m

REPAIR_LABEL = "roadhealth.pothole_repaired"


def note_passes(*, rt: Runtime, session: Session, windows: Sequence[Placed]) -> None:
    """Count each window's clean passes over the open potholes it covers, and close those
    that have had enough. Each window counts once per pothole, however often it is placed."""
    margin = rt.settings.pothole_pass_margin_m
    by_segment: dict[str, list[tuple[Placed, float, float]]] = {}
    for w in windows:
        if w.segment is None or w.chainage_m is None or not w.direction:
            continue  # no direction, no covered stretch
        lo, hi = sorted((w.chainage_m, w.chainage_m + w.direction * w.span_m))
        if hi - lo > 2 * margin:
            by_segment.setdefault(w.segment, []).append((w, lo + margin, hi - margin))
    closing: list[tuple[RhPothole, RhPotholeWatch]] = []
    for segment, covered in sorted(by_segment.items()):
        closing += _segment_passes(rt, session, segment, covered)
    _close(rt, session, closing)


def _segment_passes(
    rt: Runtime, session: Session, segment: str, covered: list[tuple[Placed, float, float]]
) -> list[tuple[RhPothole, RhPotholeWatch]]:
    found = session.scalars(
        select(RhPothole)
        .where(
            RhPothole.segment == segment,
            RhPothole.status.in_(OPEN_STATUSES),
            RhPothole.chainage_m.between(
                min(lo for _, lo, _ in covered), max(hi for _, _, hi in covered)
            ),
        )
        .order_by(RhPothole.chainage_m, RhPothole.id)
    ).all()
    if not found:
        return []
    watches = {
        w.pothole: w
        for w in session.scalars(
            select(RhPotholeWatch).where(RhPotholeWatch.pothole.in_([p.id for p in found]))
        )
    }
    reach = reach_m(rt.settings.report_position_sigma_m)
    closing = []
    for window, lo, hi in sorted(covered, key=lambda c: (c[0].t0, c[0].hash)):
        spikes = _spikes(window)
        for pothole in found:
            if not lo <= pothole.chainage_m <= hi or pothole.status not in OPEN_STATUSES:
                continue
            if any(abs(x - pothole.chainage_m) <= reach for x in spikes):
                continue  # it reported there: not a clean pass (its report restarts the count)
            watch = watches.get(pothole.id)
            if watch is None:
                watch = RhPotholeWatch(pothole=pothole.id, passes=0, vehicles=[], windows=[])
                watches[pothole.id] = watch
                session.add(watch)
            if _count(watch, window, rt.settings) and is_due(pothole, watch, window, rt.settings):
                watch.repaired_at = window.t0  # when it closed, repaired or dismissed
                pothole.status = "repaired" if pothole.status == "confirmed" else "dismissed"
                closing.append((pothole, watch))
    return closing


def _spikes(window: Placed) -> list[float]:
    """Where along the road the window's reported events lie."""
    if window.chainage_m is None:
        return []
    return [
        window.chainage_m + window.direction * float(e["offset_m"])
        for e in window.anomalies
        if is_reported(e)
    ]


def _count(watch: RhPotholeWatch, window: Placed, settings: Settings) -> bool:
    """Add a clean pass to the watch; False when this window was counted before."""
    if window.hash in watch.windows:
        return False
    watch.passes += 1
    # New lists, so the ORM sees the JSON change; each kept only as long as closing needs
    watch.windows = [*watch.windows, window.hash][-settings.pothole_repair_passes :]
    if window.device not in watch.vehicles:
        watch.vehicles = [*watch.vehicles, window.device][-settings.pothole_repair_vehicles :]
    return True


def is_due(pothole: RhPothole, watch: RhPotholeWatch, window: Placed, settings: Settings) -> bool:
    """Whether the clean passes so far close the pothole."""
    return (
        watch.passes >= settings.pothole_repair_passes
        and len(watch.vehicles) >= settings.pothole_repair_vehicles
        and window.t0 - pothole.last_seen >= settings.pothole_repair_quiet_s
    )


def repair_record(pothole: RhPothole, watch: RhPotholeWatch) -> dict[str, Any]:
    """What the chain is given of a repair: counts and an evidence hash, nothing personal."""
    return {
        "pothole": pothole.id,
        "segment": pothole.segment,
        "chainage_dm": max(0, round(pothole.chainage_m * 10)),
        "confirmed_tx": pothole.confirmed_tx,
        "clean_passes": watch.passes,
        "vehicles": len(watch.vehicles),
        "evidence": hash_json(sorted(watch.windows)),
    }


def _close(rt: Runtime, session: Session, closing: list[tuple[RhPothole, RhPotholeWatch]]) -> None:
    """Anchor the repairs of confirmed potholes in one submission, then raise their alerts."""
    anchored = [(p, w) for p, w in closing if p.status == "repaired"]
    if not anchored:
        return
    records = [repair_record(p, w) for p, w in anchored]
    receipts = rt.chain.anchor_records(REPAIR_LABEL, records)
    refused = next((r for r in receipts if r["status"] != "ok"), None)
    if refused is not None:
        # Nothing of this batch is stored; the gateway's retry anchors the same records, and
        # one already on the chain is found by its root (chain.anchor_records)
        raise ChainRefused(
            f"the chain refused a repair's anchor: {refused['error']}", code=refused["code"]
        )
    for (pothole, watch), record, receipt in zip(anchored, records, receipts, strict=True):
        watch.repaired_tx = receipt["tx"]
        raise_alert(
            rt=rt,
            session=session,
            kind="pothole_repaired",
            segment=pothole.segment,
            chain_tx=receipt["tx"],
            data={
                **pothole_place(pothole),
                "clean_passes": record["clean_passes"],
                "vehicles": record["vehicles"],
                "last_report_t0": pothole.last_seen,
                "repaired_at": watch.repaired_at,
            },
        )
