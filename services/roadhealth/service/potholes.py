"""Potholes: reports filed by matched windows, grouped along their segment into potholes
(assessment/clustering.py), confirmed on the chain with an alert once enough vehicles saw one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from chain.encoding import hash_json
from services.roadhealth.assessment.clustering import cluster_positions
from services.roadhealth.assessment.windows import pothole_confidence
from services.roadhealth.errors import ChainRefused
from services.roadhealth.models import RhPothole, RhPotholeReport
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.alerts import raise_alert
from services.roadhealth.service.locks import insert_ignoring_existing

OPEN_STATUSES = ("candidate", "confirmed")
REPORTS = cast(Table, RhPotholeReport.__table__)


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
        """The id of the candidate it starts as (regroup_segments then files it under its
        group's pothole)."""
        return f"{self.segment}:{round(self.chainage_m * 10)}:{self.message_hash[:8]}"


def file_reports(*, rt: Runtime, session: Session, reports: Sequence[Report]) -> None:
    """Store a batch's pothole reports, each as a candidate of its own, in two statements;
    regroup_segments then decides which pothole each belongs to, with every other open report
    of its segment."""
    if not reports:
        return
    session.flush()  # the candidates withdraw_reports deleted are gone before their ids return
    candidates: dict[str, dict[str, Any]] = {}
    for r in reports:
        lat, lon = rt.index.position_at(r.segment, r.chainage_m)
        candidates.setdefault(
            r.pothole_id,
            {
                "id": r.pothole_id,
                "segment": r.segment,
                "chainage_m": r.chainage_m,
                "lat": lat,
                "lon": lon,
                "reports": 0,
                "vehicles": 0,
                "confidence": 0.0,
                "status": "candidate",
                "first_seen": r.t0,
                "last_seen": r.t0,
            },
        )
    # A window matched again where it lay before files the same id: the pothole it named then
    # may live on, holding other vehicles' reports (withdraw_reports keeps it); file under it
    session.execute(
        insert_ignoring_existing(session=session, model=RhPothole), list(candidates.values())
    )
    session.execute(
        insert(REPORTS),
        [
            {
                "window_id": r.window_id,
                "pothole": r.pothole_id,
                "device": r.device,
                "chainage_m": r.chainage_m,
                "peak_mps2": r.peak_mps2,
                "message_hash": r.message_hash,
                "t0": r.t0,
            }
            for r in reports
        ],
    )


def withdraw_reports(*, session: Session, window_ids: Sequence[int]) -> dict[str, str]:
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


@dataclass(frozen=True)
class _Open:
    """An open report with what regrouping needs of the pothole it is filed under."""

    id: int
    pothole: str
    chainage_m: float
    segment: str
    status: str
    pothole_chainage_m: float
    first_seen: float
    reports: int


def regroup_segments(*, rt: Runtime, session: Session, segments: Iterable[str]) -> set[str]:
    """Cluster the open reports of each segment into potholes (assessment/clustering.py) and
    return the potholes whose reports changed. A confirmed pothole keeps its id (the chain knows
    it): the group holding it is filed under it, and a group holding two is split between them;
    other groups go to the candidate already holding most of their reports. One read for all
    the segments; only the reports that move are written."""
    ids = sorted(set(segments))
    if not ids:
        return set()
    session.flush()
    rows = session.execute(
        select(
            RhPotholeReport.id,
            RhPotholeReport.pothole,
            RhPotholeReport.chainage_m,
            RhPothole.segment,
            RhPothole.status,
            RhPothole.chainage_m,
            RhPothole.first_seen,
            RhPothole.reports,
        )
        .join(RhPothole, RhPothole.id == RhPotholeReport.pothole)
        .where(RhPothole.segment.in_(ids), RhPothole.status.in_(OPEN_STATUSES))
        .order_by(RhPotholeReport.id)
    ).all()
    by_segment: dict[str, list[_Open]] = {}
    for row in rows:
        by_segment.setdefault(row[3], []).append(_Open(*row))
    moves: list[dict[str, Any]] = []
    changed: set[str] = set()
    gone: list[str] = []
    for reports in by_segment.values():
        changed |= _regroup(rt, reports, moves, gone)
    if moves:
        session.execute(
            update(REPORTS)
            .where(REPORTS.c.id == bindparam("report_id"))
            .values(pothole=bindparam("heir")),
            moves,
        )
    if gone:
        session.execute(delete(RhPothole).where(RhPothole.id.in_(gone)))
    return changed


def _regroup(
    rt: Runtime, reports: list[_Open], moves: list[dict[str, Any]], gone: list[str]
) -> set[str]:
    """One segment's regrouping: the report moves and the candidates left empty go to `moves`
    and `gone`; returns the potholes whose reports changed."""
    labels = cluster_positions(
        [r.chainage_m for r in reports], sigma_m=rt.settings.report_position_sigma_m
    )
    groups: dict[int, list[_Open]] = {}
    for report, label in zip(reports, labels, strict=True):
        groups.setdefault(label, []).append(report)
    potholes = {r.pothole: r for r in reports}
    before: dict[str, set[int]] = {}
    for r in reports:
        before.setdefault(r.pothole, set()).add(r.id)
    after: dict[str, set[int]] = {}
    for members in groups.values():
        for heir, part in _heirs(members, potholes):
            after.setdefault(heir, set()).update(r.id for r in part)
            moves += [{"report_id": r.id, "heir": heir} for r in part if r.pothole != heir]
    gone += [p for p, r in potholes.items() if p not in after and r.status == "candidate"]
    # A pothole is recounted when its reports changed, or were never counted (a new candidate)
    return {
        p for p, held in after.items() if held != before.get(p) or potholes[p].reports != len(held)
    }


def _heirs(members: list[_Open], potholes: dict[str, _Open]) -> list[tuple[str, list[_Open]]]:
    """Which pothole each report of one group is filed under."""
    confirmed = sorted({r.pothole for r in members if potholes[r.pothole].status == "confirmed"})
    if len(confirmed) > 1:
        nearest: dict[str, list[_Open]] = {c: [] for c in confirmed}
        for r in members:
            best = min(confirmed, key=lambda c: abs(potholes[c].pothole_chainage_m - r.chainage_m))
            nearest[best].append(r)
        return [(c, part) for c, part in nearest.items() if part]
    if confirmed:
        return [(confirmed[0], members)]
    held: dict[str, int] = {}
    for r in members:
        held[r.pothole] = held.get(r.pothole, 0) + 1
    heir = min(held, key=lambda c: (-held[c], potholes[c].first_seen, c))
    return [(heir, members)]


def refresh_potholes(*, rt: Runtime, session: Session, pothole_ids: Iterable[str]) -> None:
    """Recount reports; confirm (on chain, with an alert) once enough vehicles saw the pothole."""
    ids = sorted(set(pothole_ids))
    potholes = session.scalars(select(RhPothole).where(RhPothole.id.in_(ids))).all()
    filed: dict[str, list[Row[str, str, float, str, float]]] = {}
    for report in session.execute(
        select(
            RhPotholeReport.pothole,
            RhPotholeReport.device,
            RhPotholeReport.chainage_m,
            RhPotholeReport.message_hash,
            RhPotholeReport.t0,
        ).where(RhPotholeReport.pothole.in_(ids))
    ):  # rows, not objects: a confirmed pothole gathers hundreds of reports
        filed.setdefault(report.pothole, []).append(report)
    due: list[tuple[RhPothole, dict[str, Any]]] = []
    for pothole in sorted(potholes, key=lambda p: p.id):
        # In one order whatever the ids (so sums come out the same in every process)
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
        if pothole.vehicles >= rt.settings.pothole_min_vehicles and grew:
            due.append((pothole, _confirmation(pothole, reports)))
    _confirm(rt, session, due)


def _confirmation(
    pothole: RhPothole, reports: list[Row[str, str, float, str, float]]
) -> dict[str, Any]:
    return {
        "pothole": pothole.id,
        "segment": pothole.segment,
        "chainage_dm": max(0, round(pothole.chainage_m * 10)),
        "reports": pothole.reports,
        "vehicles": pothole.vehicles,
        "confidence_pct": int(pothole.confidence * 100),
        "evidence": hash_json(sorted(r.message_hash for r in reports)),
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
    if refused is not None:
        raise ChainRefused(
            f"the chain refused roadhealth.confirm_pothole: {refused['error']}",
            code=refused["code"],
        )
