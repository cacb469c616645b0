"""Potholes: reports filed by matched windows, grouped along their segment into potholes
(assessment/clustering.py), confirmed on the chain with an alert once enough vehicles saw one.

A pothole keeps a running summary (mean position, reports, vehicles, confidence), so an
ingest's work does not grow with what a segment has gathered: a new report is grouped only with
the open potholes near it; the reports of the few small candidates there are clustered again
with it, and a settled pothole (confirmed, or a candidate of SETTLED_REPORTS reports) takes part
through its summary alone. Vehicles passing a pothole without a report close it (repairs.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from chain.encoding import hash_json
from services.roadhealth.assessment.clustering import MERGE_Z, cluster_positions
from services.roadhealth.assessment.windows import pothole_confidence
from services.roadhealth.errors import ChainRefused
from services.roadhealth.models import RhPothole, RhPotholeReport, RhPotholeWatch
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.alerts import raise_alert

OPEN_STATUSES = ("candidate", "confirmed")
REPORTS = cast(Table, RhPotholeReport.__table__)
# A filed report as a summary is worked out from it (_Filed's fields, in order)
FILED_COLUMNS = (
    RhPotholeReport.id,
    RhPotholeReport.pothole,
    RhPotholeReport.chainage_m,
    RhPotholeReport.device,
    RhPotholeReport.t0,
)
# A candidate with this many reports is grouped by its summary, as a confirmed one is: where
# its reports pile up is known to within sigma / 5, and regrouping it report by report would
# cost what it has gathered (a bus reporting a manhole cover on every pass)
SETTLED_REPORTS = 24


def pothole_place(pothole: RhPothole) -> dict[str, Any]:
    """Which pothole and where, as its alerts give it."""
    return {
        "pothole": pothole.id,
        "segment": pothole.segment,
        "lat": round(pothole.lat, 7),
        "lon": round(pothole.lon, 7),
        "chainage_m": round(pothole.chainage_m, 1),
    }


def reach_m(sigma_m: float) -> float:
    """The farthest apart two reports are still grouped (two lone reports, MERGE_Z standard
    errors): open potholes further than this from every new report take no part."""
    return MERGE_Z * sigma_m * math.sqrt(2.0)


@dataclass(frozen=True)
class Report:
    """A pothole report a matched window files: where on its segment, by whom, how hard."""

    segment: str
    window_id: int
    device: str
    message_hash: str
    t0: float
    chainage_m: float
    peak_mps2: float

    @property
    def pothole_id(self) -> str:
        """The id of the candidate it starts, when it joins no open pothole."""
        return f"{self.segment}:{round(self.chainage_m * 10)}:{self.message_hash[:8]}"


@dataclass(frozen=True)
class _Filed:
    """A report of a small candidate near the new ones, read to be grouped again with them."""

    id: int
    pothole: str
    chainage_m: float
    device: str
    t0: float


Member = _Filed | Report


def file_reports(*, rt: Runtime, session: Session, reports: Sequence[Report]) -> dict[str, int]:
    """Store a batch's pothole reports, each under the open pothole it belongs to or a new
    candidate. Returns the potholes whose summaries changed, with their vehicles before."""
    if not reports:
        return {}
    session.flush()  # the candidates withdraw_reports deleted are gone before their ids return
    by_segment: dict[str, list[Report]] = {}
    for r in sorted(reports, key=lambda r: (r.segment, r.chainage_m, r.message_hash)):
        by_segment.setdefault(r.segment, []).append(r)
    before: dict[str, int] = {}
    for segment, new in by_segment.items():
        before.update(_file_segment(rt, session, segment, new))
    return before


def _file_segment(rt: Runtime, session: Session, segment: str, new: list[Report]) -> dict[str, int]:
    sigma = rt.settings.report_position_sigma_m
    reach = reach_m(sigma)
    near = session.scalars(
        select(RhPothole)
        .where(
            RhPothole.segment == segment,
            RhPothole.status.in_(OPEN_STATUSES),
            RhPothole.chainage_m.between(new[0].chainage_m - reach, new[-1].chainage_m + reach),
        )
        .order_by(RhPothole.id)
    ).all()
    settled = [p for p in near if p.status == "confirmed" or p.reports >= SETTLED_REPORTS]
    loose = {p.id: p for p in near if p not in settled}
    filed = [
        _Filed(*row)
        for row in session.execute(
            select(*FILED_COLUMNS)
            .where(RhPotholeReport.pothole.in_(sorted(loose)))
            .order_by(RhPotholeReport.id)
        )
    ]
    members: list[Member] = [*filed, *new]
    labels = cluster_positions([m.chainage_m for m in members], sigma_m=sigma)
    groups: dict[int, list[Member]] = {}
    for member, label in zip(members, labels, strict=True):
        groups.setdefault(label, []).append(member)
    heirs: dict[str, list[Member]] = {}
    for group in groups.values():
        for heir, part in _heirs(session, group, settled, loose, sigma):
            heirs.setdefault(heir, []).extend(part)
    return _apply(rt, session, segment, heirs, {p.id: p for p in near}, filed)


def _heirs(
    session: Session,
    group: list[Member],
    settled: list[RhPothole],
    loose: Mapping[str, RhPothole],
    sigma_m: float,
) -> list[tuple[str, list[Member]]]:
    """Which pothole each report of one group is filed under: a settled pothole whose mean the
    group's is indistinct from (the nearest one for each report, when several are), else the
    candidate already holding most of the group, else a new candidate."""
    mean = sum(m.chainage_m for m in group) / len(group)
    close = [
        p
        for p in settled
        if abs(mean - p.chainage_m)
        < MERGE_Z * sigma_m * math.sqrt(1.0 / len(group) + 1.0 / max(p.reports, 1))
    ]
    if close:
        nearest: dict[str, list[Member]] = {}
        for m in group:
            best = min(close, key=lambda p: (abs(p.chainage_m - m.chainage_m), p.id))
            nearest.setdefault(best.id, []).append(m)
        return sorted(nearest.items())
    held: dict[str, int] = {}
    for m in group:
        if isinstance(m, _Filed):
            held[m.pothole] = held.get(m.pothole, 0) + 1
    if held:
        heir = min(held, key=lambda c: (-held[c], loose[c].first_seen, c))
        return [(heir, group)]
    first = next(m for m in group if isinstance(m, Report))
    return [(_free_id(session, first.pothole_id), group)]


def _free_id(session: Session, wanted: str) -> str:
    """A new candidate's id; never one a closed pothole holds (that would reopen it)."""
    candidate, n = wanted, 1
    while session.get(RhPothole, candidate) is not None:
        n += 1
        candidate = f"{wanted}.{n}"
    return candidate


def _apply(
    rt: Runtime,
    session: Session,
    segment: str,
    heirs: dict[str, list[Member]],
    near: dict[str, RhPothole],
    filed: list[_Filed],
) -> dict[str, int]:
    """Write the grouping: report moves, new reports and candidates, and the summaries of the
    potholes that gained or lost reports. Returns those potholes with their vehicles before."""
    moves = [
        {"report_id": m.id, "heir": heir}
        for heir, part in heirs.items()
        for m in part
        if isinstance(m, _Filed) and m.pothole != heir
    ]
    loose = {f.pothole for f in filed}
    before: dict[str, int] = {}
    for heir, part in heirs.items():
        pothole = near.get(heir)
        if pothole is None:
            first = min((m for m in part if isinstance(m, Report)), key=lambda m: m.t0)
            pothole = _new_candidate(rt, heir, segment, first)
            session.add(pothole)
        if heir in near and heir not in loose:  # settled: its summary gains what joined it
            gained = [m for m in part if isinstance(m, Report) or m.pothole != heir]
            before[heir] = pothole.vehicles
            _add_to_summary(rt, session, pothole, gained)
        elif any(isinstance(m, Report) or m.pothole != heir for m in part) or len(part) != sum(
            f.pothole == heir for f in filed
        ):
            before[heir] = pothole.vehicles
            _recount(rt, pothole, part)
    for emptied in sorted(loose - set(heirs)):
        if near[emptied].status == "candidate":
            session.delete(near[emptied])
    session.flush()
    if moves:
        session.execute(
            update(REPORTS)
            .where(REPORTS.c.id == bindparam("report_id"))
            .values(pothole=bindparam("heir")),
            moves,
        )
    rows = [
        {
            "window_id": m.window_id,
            "pothole": heir,
            "device": m.device,
            "chainage_m": m.chainage_m,
            "peak_mps2": m.peak_mps2,
            "message_hash": m.message_hash,
            "t0": m.t0,
        }
        for heir, part in heirs.items()
        for m in part
        if isinstance(m, Report)
    ]
    if rows:
        session.execute(insert(REPORTS), rows)
    # A pothole reported again is no longer being passed cleanly: its watch starts over
    session.execute(delete(RhPotholeWatch).where(RhPotholeWatch.pothole.in_(sorted(before))))
    return before


def _new_candidate(rt: Runtime, pothole_id: str, segment: str, first: Report) -> RhPothole:
    lat, lon = rt.index.position_at(segment, first.chainage_m)
    return RhPothole(
        id=pothole_id,
        segment=segment,
        chainage_m=first.chainage_m,
        lat=lat,
        lon=lon,
        reports=0,
        vehicles=0,
        confidence=0.0,
        status="candidate",
        confirmed_tx=None,
        first_seen=first.t0,
        last_seen=first.t0,
    )


def _add_to_summary(
    rt: Runtime, session: Session, pothole: RhPothole, gained: list[Member]
) -> None:
    """A settled pothole's summary with these reports added, without reading its others: a
    device is a new vehicle unless one of its reports is filed under the pothole already."""
    devices = sorted({m.device for m in gained})
    known = set(
        session.scalars(
            select(RhPotholeReport.device)
            .where(RhPotholeReport.pothole == pothole.id, RhPotholeReport.device.in_(devices))
            .distinct()
        )
    )
    n = pothole.reports + len(gained)
    pothole.chainage_m = (
        pothole.chainage_m * pothole.reports + sum(m.chainage_m for m in gained)
    ) / n
    pothole.reports = n
    pothole.vehicles += len(set(devices) - known)
    _settle(rt, pothole, max(m.t0 for m in gained))


def _recount(rt: Runtime, pothole: RhPothole, part: list[Member]) -> None:
    """A small candidate's summary from all its reports (all of them are in `part`)."""
    # In one order whatever the arrival (so sums come out the same in every process)
    ordered = sorted(m.chainage_m for m in part)
    pothole.reports = len(part)
    pothole.vehicles = len({m.device for m in part})
    pothole.chainage_m = sum(ordered) / len(ordered)
    _settle(rt, pothole, max(m.t0 for m in part))


def _settle(rt: Runtime, pothole: RhPothole, newest_t0: float) -> None:
    pothole.lat, pothole.lon = rt.index.position_at(pothole.segment, pothole.chainage_m)
    pothole.last_seen = max(pothole.last_seen, newest_t0)
    pothole.confidence = pothole_confidence(pothole.vehicles, pothole.reports - pothole.vehicles)


def withdraw_reports(*, rt: Runtime, session: Session, window_ids: Sequence[int]) -> dict[str, int]:
    """Delete the pothole reports of these windows (matched again, they report anew) and take
    them out of their potholes' summaries; a candidate left without reports goes too. Returns
    the potholes that lost reports, with their vehicles before."""
    if not window_ids:
        return {}
    rows = session.execute(
        select(
            RhPotholeReport.id,
            RhPotholeReport.pothole,
            RhPotholeReport.device,
            RhPotholeReport.chainage_m,
        ).where(RhPotholeReport.window_id.in_(window_ids))
    ).all()
    if not rows:
        return {}
    session.execute(delete(RhPotholeReport).where(RhPotholeReport.id.in_([r.id for r in rows])))
    lost: dict[str, list[Any]] = {}
    for r in rows:
        lost.setdefault(r.pothole, []).append(r)
    still = {
        (pothole, device)
        for pothole, device in session.execute(
            select(RhPotholeReport.pothole, RhPotholeReport.device)
            .where(
                RhPotholeReport.pothole.in_(sorted(lost)),
                RhPotholeReport.device.in_(sorted({r.device for r in rows})),
            )
            .distinct()
        )
    }
    before: dict[str, int] = {}
    for pothole in session.scalars(select(RhPothole).where(RhPothole.id.in_(sorted(lost)))):
        gone = lost[pothole.id]
        left = pothole.reports - len(gone)
        if left <= 0:
            if pothole.status == "candidate":
                session.delete(pothole)
            continue  # a confirmed one keeps what the chain was told until it gains again
        before[pothole.id] = pothole.vehicles
        pothole.chainage_m = (
            pothole.chainage_m * pothole.reports - sum(r.chainage_m for r in gone)
        ) / left
        pothole.reports = left
        devices = {r.device for r in gone}
        pothole.vehicles = max(
            1, pothole.vehicles - sum((pothole.id, d) not in still for d in devices)
        )
        _settle(rt, pothole, pothole.last_seen)
    return before


def confirm_grown(*, rt: Runtime, session: Session, vehicles_before: Mapping[str, int]) -> None:
    """Confirm (on chain, with an alert) the potholes that gained a vehicle and have enough."""
    ids = sorted(vehicles_before)
    due: list[tuple[RhPothole, dict[str, Any]]] = []
    for pothole in session.scalars(
        select(RhPothole).where(RhPothole.id.in_(ids)).order_by(RhPothole.id)
    ):
        grew = pothole.vehicles > vehicles_before[pothole.id]
        if (
            pothole.status in OPEN_STATUSES
            and grew
            and pothole.vehicles >= rt.settings.pothole_min_vehicles
        ):
            due.append((pothole, _confirmation(session, pothole)))
    _confirm(rt, session, due)


def _confirmation(session: Session, pothole: RhPothole) -> dict[str, Any]:
    hashes = session.scalars(
        select(RhPotholeReport.message_hash).where(RhPotholeReport.pothole == pothole.id)
    ).all()
    return {
        "pothole": pothole.id,
        "segment": pothole.segment,
        "chainage_dm": max(0, round(pothole.chainage_m * 10)),
        "reports": pothole.reports,
        "vehicles": pothole.vehicles,
        "confidence_pct": int(pothole.confidence * 100),
        "evidence": hash_json(sorted(hashes)),
    }


def _confirm(rt: Runtime, session: Session, due: list[tuple[RhPothole, dict[str, Any]]]) -> None:
    """Confirm potholes on the chain, all in one submission, and mark those it accepted.

    The chain holds what it committed whatever becomes of this transaction: after a refusal
    the batch is stored by nothing and retried, and its confirmations come again with the
    same counts, which the contract accepts. One it refuses as `stale_pothole` holds fewer
    reports than the chain's record of that pothole (a report lost when its window matched
    again, or a confirmation committed for an attempt that was rolled back): the chain's
    record stays, as it is, and the pothole is confirmed again once its count passes it.
    """
    if not due:
        return
    receipts = rt.chain.attest_many("confirm_pothole", [args for _, args in due])
    refused = None
    for (pothole, _), receipt in zip(due, receipts, strict=True):
        if receipt["status"] != "ok":
            if receipt["code"] != "stale_pothole":
                refused = refused or receipt
            continue
        first = pothole.status == "candidate"
        pothole.status, pothole.confirmed_tx = "confirmed", receipt["tx"]
        if first:
            raise_alert(
                rt=rt,
                session=session,
                kind="pothole_confirmed",
                segment=pothole.segment,
                chain_tx=receipt["tx"],
                data={
                    **pothole_place(pothole),
                    "vehicles": pothole.vehicles,
                    "reports": pothole.reports,
                    "confidence": pothole.confidence,
                },
            )
    if refused is not None:
        raise ChainRefused(
            f"the chain refused roadhealth.confirm_pothole: {refused['error']}",
            code=refused["code"],
        )


def refresh_potholes(*, rt: Runtime, session: Session, pothole_ids: Iterable[str]) -> None:
    """Recount these potholes' summaries from all their reports (a repair tool, not the ingest
    path: it reads every report of each)."""
    ids = sorted(set(pothole_ids))
    filed: dict[str, list[Member]] = {}
    for row in session.execute(select(*FILED_COLUMNS).where(RhPotholeReport.pothole.in_(ids))):
        filed.setdefault(row.pothole, []).append(_Filed(*row))
    for pothole in session.scalars(select(RhPothole).where(RhPothole.id.in_(ids))):
        if filed.get(pothole.id):
            _recount(rt, pothole, filed[pothole.id])
