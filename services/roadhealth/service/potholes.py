"""Potholes: reports filed by matched windows, grouped along their segment into potholes
(assessment/clustering.py), confirmed on the chain with an alert once enough vehicles saw one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from chain.encoding import hash_json
from services.roadhealth.assessment.clustering import cluster_positions
from services.roadhealth.assessment.windows import pothole_confidence
from services.roadhealth.models import RhPothole, RhPotholeReport
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.alerts import raise_alert

OPEN_STATUSES = ("candidate", "confirmed")


def file_report(
    *,
    rt: Runtime,
    session: Session,
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
    pothole_id = f"{segment}:{round(chainage_m * 10)}:{message_hash[:8]}"
    # A window matched again where it lay before files the same id: the pothole it named then
    # may live on, holding other vehicles' reports (withdraw_reports keeps it); file under it
    existing = session.get(RhPothole, pothole_id)
    if existing is None or existing in session.deleted:
        lat, lon = rt.index.position_at(segment, chainage_m)
        session.add(
            RhPothole(
                id=pothole_id,
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
        )
    session.add(
        RhPotholeReport(
            window_id=window_id,
            pothole=pothole_id,
            device=device,
            chainage_m=chainage_m,
            peak_mps2=peak_mps2,
            message_hash=message_hash,
            t0=t0,
        )
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


def regroup_segment(*, rt: Runtime, session: Session, segment: str) -> set[str]:
    """Cluster the open reports of a segment into potholes (assessment/clustering.py) and return the
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


def refresh_potholes(*, rt: Runtime, session: Session, pothole_ids: Iterable[str]) -> None:
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
        receipt = rt.chain.attest(
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


def _attested_reports(rt: Runtime, pothole_id: str) -> int:
    """How many reports the chain's record of a confirmed pothole counts."""
    record = rt.chain.read(f"pothole:{pothole_id}")
    return 0 if record is None else int(record["reports"])
