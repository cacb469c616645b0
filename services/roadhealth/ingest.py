"""The gateway's ingestion endpoint, checks in the order docs/roadhealth-ingest.md gives them."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chain.encoding import canonical
from services.roadhealth import assess
from services.roadhealth.analysis import analyse_window, window_length_m
from services.roadhealth.errors import AnchorNotCommitted, BadBatch, BatchConflict
from services.roadhealth.geo import bearing_deg, distance_m
from services.roadhealth.matching import Match
from services.roadhealth.models import RhBatch, RhWindow
from services.roadhealth.runtime import Runtime
from services.roadhealth.schemas import IngestRequest, MessageResult
from services.roadhealth.wire import (
    PayloadInvalid,
    Telemetry,
    batch_root,
    has_valid_signature,
    message_hash,
    parse_payload,
    topic_device,
)

HEADING_MAX_GAP_S = 60.0
HEADING_MIN_MOVE_M = 3.0
# How far a neighbour's start may lie from where a window's travel ends: GPS jitter on both
# fixes (3 sigma of a few metres each) plus a turn cutting the corner
HEADING_TRAVEL_SLACK_M = 15.0


@dataclass
class _Accepted:
    leaf_index: int
    telemetry: Telemetry
    payload: dict[str, Any]
    hash: str
    topic: str
    vehicle_class: str


def ingest_batch(
    rt: Runtime, session: Session, *, caller_org: str, request: IngestRequest
) -> dict[str, Any]:
    """Check and store an anchored batch; the same batch again answers the first answer."""
    batch, messages = request.batch, request.messages
    hashes = _check_integrity(request)
    _check_anchor(rt, caller_org=caller_org, root=batch.root, tx=batch.anchor_tx, count=batch.count)
    # Verify this anchor was not ingested before (then answer as the first time)
    previous = session.get(RhBatch, batch.anchor_tx)
    if previous is not None:
        if previous.root != batch.root:
            raise BatchConflict(f"batch {batch.anchor_tx} was ingested with another root")
        return dict(previous.response)
    results: dict[int, MessageResult] = {}
    accepted = _check_messages(rt, request, results)
    _deduplicate(session, accepted, results)
    new = [a for a in accepted if a.leaf_index not in results]
    revisited, left = _complete_headings(rt, session, [a.telemetry for a in new])
    windows = _store_windows(rt, session, batch.anchor_tx, batch.root, new, results)
    response = {
        "anchor_tx": batch.anchor_tx,
        "root": batch.root,
        "count": batch.count,
        "stored": sum(r.status == "stored" for r in results.values()),
        "duplicates": sum(r.status == "duplicate" for r in results.values()),
        "rejected": sum(r.status == "rejected" for r in results.values()),
        "results": [results[m.leaf_index].model_dump() for m in messages],
    }
    session.add(
        RhBatch(
            anchor_tx=batch.anchor_tx,
            root=batch.root,
            count=batch.count,
            org=caller_org,
            leaves=hashes,
            response=response,
            received_at=time.time(),
        )
    )
    try:
        session.flush()
    except IntegrityError as exc:
        raise BatchConflict(
            "this batch (or one of its windows) is being stored by another request; retry",
            code="batch_in_progress",
        ) from exc
    _assess(rt, session, revisited + windows, also_refresh=left)
    return response


def _check_integrity(request: IngestRequest) -> list[str]:
    batch, messages = request.batch, request.messages
    # Verify the request carries the whole batch, leaves in order, each hash its payload's
    if len(messages) != batch.count:
        raise BadBatch(f"count is {batch.count} but {len(messages)} messages were sent")
    for i, m in enumerate(messages):
        if m.leaf_index != i:
            raise BadBatch(f"messages[{i}] has leaf_index {m.leaf_index}; leaves must be in order")
    hashes = [m.hash for m in messages]
    if len(set(hashes)) != len(hashes):
        raise BadBatch("two messages have the same hash")
    for m in messages:
        try:
            actual = message_hash(m.payload)
        except ValueError as exc:  # EncodingError: a value JSON cannot canonicalise
            raise BadBatch(f"leaf {m.leaf_index}: payload cannot be canonicalised: {exc}") from exc
        if actual != m.hash:
            raise BadBatch(
                f"leaf {m.leaf_index}: hash is not SHA-256 of the canonical payload",
                code="hash_mismatch",
                details={"leaf_index": m.leaf_index, "expected": actual},
            )
    # Verify the hashes make the claimed root
    if batch_root(hashes) != batch.root:
        raise BadBatch(
            "the RFC 6962 root over the message hashes is not batch.root", code="root_mismatch"
        )
    return hashes


def _check_anchor(rt: Runtime, *, caller_org: str, root: str, tx: str, count: int) -> None:
    # Verify the caller's organisation anchored exactly this root, count, in this transaction
    if rt.chain.anchored_root(caller_org, root) == tx:
        record = rt.chain.anchor_record(tx)
        if record is None or record.get("count") != count:
            raise BadBatch(f"anchor {tx} claims another count", code="anchor_mismatch")
        return
    bundle = rt.chain.tx_proof(tx)
    if bundle is None:
        raise AnchorNotCommitted(f"anchor transaction {tx} is not committed (yet); retry")
    raise BadBatch(
        f"transaction {tx} is not {caller_org}'s successful anchor of root {root}",
        code="anchor_mismatch",
    )


def _check_messages(
    rt: Runtime, request: IngestRequest, results: dict[int, MessageResult]
) -> list[_Accepted]:
    devices: dict[str, Any] = {}
    accepted = []
    for m in request.messages:

        def reject(code: str, message: str, leaf: int = m.leaf_index) -> None:
            results[leaf] = MessageResult(
                leaf_index=leaf, status="rejected", code=code, message=message
            )

        try:
            telemetry = parse_payload(m.payload)
        except PayloadInvalid as exc:
            reject(exc.code, exc.message)
            continue
        if topic_device(m.topic) != telemetry.device:
            reject("topic_mismatch", "topic is not city/{c}/road/{s}/sensor/{device}/telemetry")
            continue
        if telemetry.device not in devices:
            devices[telemetry.device] = rt.chain.device(telemetry.device)
        record = devices[telemetry.device]
        if record is None:
            reject("unknown_device", f"device {telemetry.device} is not registered")
        elif record["status"] != "active":
            reject("device_suspended", f"device {telemetry.device} is suspended")
        elif not has_valid_signature(m.payload, record["pub_key"]):
            reject("bad_signature", "sig does not verify with the device's registered key")
        else:
            accepted.append(
                _Accepted(
                    m.leaf_index, telemetry, m.payload, m.hash, m.topic, record["vehicle_class"]
                )
            )
    return accepted


def _deduplicate(
    session: Session, accepted: list[_Accepted], results: dict[int, MessageResult]
) -> None:
    keys = [(a.telemetry.device, a.telemetry.seq) for a in accepted]
    stored: dict[tuple[str, int], str] = {}
    for chunk in range(0, len(keys), 500):
        rows = session.execute(
            select(RhWindow.device, RhWindow.seq, RhWindow.hash).where(
                tuple_(RhWindow.device, RhWindow.seq).in_(keys[chunk : chunk + 500])
            )
        ).all()
        stored.update({(r.device, r.seq): r.hash for r in rows})
    for a in accepted:
        key = (a.telemetry.device, a.telemetry.seq)
        if key not in stored:
            stored[key] = a.hash  # a later leaf of this batch with the same seq conflicts
            continue
        same = stored[key] == a.hash
        results[a.leaf_index] = MessageResult(
            leaf_index=a.leaf_index,
            status="duplicate" if same else "rejected",
            code=None if same else "seq_conflict",
            message=None if same else f"seq {a.telemetry.seq} was stored with another payload",
        )


def _store_windows(
    rt: Runtime,
    session: Session,
    anchor_tx: str,
    root: str,
    accepted: list[_Accepted],
    results: dict[int, MessageResult],
) -> list[RhWindow]:
    headings = _headings(session, [a.telemetry for a in accepted])
    windows = []
    for a in accepted:
        t = a.telemetry
        heading = headings.get((t.device, t.seq))
        match = _match_window(rt, t, heading)
        analysis = analyse_window(
            t.acc_z,
            rate_hz=t.rate_hz,
            speed_mps=t.speed_mps,
            vehicle_class=a.vehicle_class,
            classifier=rt.classifier,
        )
        window = RhWindow(
            device=t.device,
            seq=t.seq,
            hash=a.hash,
            payload=canonical(a.payload).decode(),
            topic=a.topic,
            t0=t.t0,
            rate_hz=t.rate_hz,
            lat=t.lat,
            lon=t.lon,
            speed_mps=t.speed_mps,
            samples=len(t.acc_z),
            vehicle_class=a.vehicle_class,
            anchor_tx=anchor_tx,
            leaf_index=a.leaf_index,
            root=root,
            segment=None if match is None else match.segment,
            chainage_m=None if match is None else match.chainage_m,
            direction=0 if match is None else match.direction,
            heading_deg=heading,
            iri=analysis.iri,
            iri_log_std=analysis.iri_log_std,
            anomalies=[e.as_json() for e in analysis.events],
        )
        session.add(window)
        windows.append(window)
        results[a.leaf_index] = MessageResult(
            leaf_index=a.leaf_index, status="stored", segment=window.segment
        )
    return windows


def _match_window(rt: Runtime, t: Telemetry, heading: float | None) -> Match | None:
    return _match_start(
        rt, t.lat, t.lon, window_length_m(t.speed_mps, len(t.acc_z), t.rate_hz), heading
    )


def _match_start(
    rt: Runtime, lat: float, lon: float, travel_m: float, heading: float | None
) -> Match | None:
    """Match a window by its middle, not its first sample: a window that starts at a junction
    mostly covers the road it drives into. The chainage kept is still the window's start.
    Without a heading the start alone is matched and the direction stays unknown (0)."""
    if heading is None:
        return rt.index.match(lat, lon, None)
    half_m = travel_m / 2
    north, east = half_m * math.cos(math.radians(heading)), half_m * math.sin(math.radians(heading))
    mid_lat = lat + north / 111_195.0
    mid_lon = lon + east / (111_195.0 * math.cos(math.radians(lat)))
    middle = rt.index.match(mid_lat, mid_lon, heading)
    if middle is None:
        return rt.index.match(lat, lon, heading)
    return replace(middle, chainage_m=middle.chainage_m - middle.direction * half_m)


def _complete_headings(
    rt: Runtime, session: Session, items: list[Telemetry]
) -> tuple[list[RhWindow], set[str]]:
    """Give a stored window that had no heading (its device's last in an earlier batch, right
    after a jump) the heading towards its next window, which this batch brings, and match it
    again; returns those windows and the segments they were matched to before."""
    first: dict[str, Telemetry] = {}
    for t in items:
        if t.device not in first or t.seq < first[t.device].seq:
            first[t.device] = t
    revisited: list[RhWindow] = []
    left: set[str] = set()
    for device, nxt in sorted(first.items()):
        window = session.scalars(
            select(RhWindow).where(
                RhWindow.device == device,
                RhWindow.seq == nxt.seq - 1,
                RhWindow.heading_deg.is_(None),
            )
        ).first()
        if window is None:
            continue
        travel = window_length_m(window.speed_mps, window.samples, window.rate_hz)
        here = _Fix(window.seq, window.t0, window.lat, window.lon, travel)
        there = _Fix(
            nxt.seq,
            nxt.t0,
            nxt.lat,
            nxt.lon,
            window_length_m(nxt.speed_mps, len(nxt.acc_z), nxt.rate_hz),
        )
        heading = _heading(here, there)
        if heading is None:
            continue
        match = _match_start(rt, window.lat, window.lon, travel, heading)
        if window.segment is not None and (match is None or match.segment != window.segment):
            left.add(window.segment)
        window.heading_deg = heading
        window.segment = None if match is None else match.segment
        window.chainage_m = None if match is None else match.chainage_m
        window.direction = 0 if match is None else match.direction
        revisited.append(window)
    return revisited, left


def _headings(session: Session, items: list[Telemetry]) -> dict[tuple[str, int], float]:
    """Heading of each window along its own path: towards the device's next window, else from
    its previous one; a neighbour that is not where the window's travel leads is not used."""
    by_device: dict[str, list[Telemetry]] = defaultdict(list)
    for t in items:
        by_device[t.device].append(t)
    out: dict[tuple[str, int], float] = {}
    for device, group in by_device.items():
        group.sort(key=lambda t: t.seq)
        earlier = session.execute(
            select(
                RhWindow.seq,
                RhWindow.t0,
                RhWindow.lat,
                RhWindow.lon,
                RhWindow.speed_mps,
                RhWindow.samples,
                RhWindow.rate_hz,
            )
            .where(RhWindow.device == device, RhWindow.seq < group[0].seq)
            .order_by(RhWindow.seq.desc())
            .limit(1)
        ).first()
        points = [
            _Fix(
                e.seq, float(e.t0), e.lat, e.lon, window_length_m(e.speed_mps, e.samples, e.rate_hz)
            )
            for e in ([earlier] if earlier else [])
        ]
        points += [
            _Fix(t.seq, t.t0, t.lat, t.lon, window_length_m(t.speed_mps, len(t.acc_z), t.rate_hz))
            for t in group
        ]
        offset = len(points) - len(group)
        for i, t in enumerate(group):
            j = i + offset
            heading = _heading(points[j], points[j + 1]) if j + 1 < len(points) else None
            if heading is None and j > 0:
                heading = _heading(points[j - 1], points[j])
            if heading is not None:
                out[(device, t.seq)] = heading
    return out


@dataclass(frozen=True)
class _Fix:
    """A window's start: its seq, time, position and the distance the window covers."""

    seq: int
    t0: float
    lat: float
    lon: float
    travel_m: float


def _heading(a: _Fix, b: _Fix) -> float | None:
    """Bearing from a to b when b is where a's window leads: the next seq, soon after, about a
    window's travel away (a device that jumps elsewhere, e.g. after a gap, gives none)."""
    if b.seq != a.seq + 1 or abs(b.t0 - a.t0) > HEADING_MAX_GAP_S:
        return None
    moved = distance_m(a.lat, a.lon, b.lat, b.lon)
    if (
        moved < HEADING_MIN_MOVE_M
        or abs(moved - a.travel_m) > HEADING_TRAVEL_SLACK_M + 0.3 * a.travel_m
    ):
        return None
    return bearing_deg(a.lat, a.lon, b.lat, b.lon)


def _assess(
    rt: Runtime, session: Session, windows: list[RhWindow], *, also_refresh: set[str]
) -> None:
    reported: set[str] = set()
    for window in windows:
        # A report needs the direction of travel: without it an event `offset_m` into the
        # window may lie before or after its start, and a window starting at a junction may
        # be on either road (such a report once made a pothole on the wrong street)
        if window.segment is None or window.chainage_m is None or not window.direction:
            continue
        length = rt.index.lengths_m.get(window.segment, 0.0)
        direction = window.direction
        for event in window.anomalies:
            if not event.get("reported", event["kind"] == "pothole"):
                continue  # a bump, or the classifier calls its surroundings plain road
            chainage = window.chainage_m + direction * float(event["offset_m"])
            if not 0.0 <= chainage <= length:
                continue  # past the segment's end: another segment's business
            assess.file_report(
                rt, session, window=window, chainage_m=chainage, peak_mps2=float(event["peak_mps2"])
            )
            reported.add(window.segment)
    potholes: set[str] = set()
    for segment in sorted(reported):
        potholes |= assess.regroup_segment(rt, session, segment)
    assess.refresh_segments(
        rt, session, [w.segment for w in windows if w.segment] + sorted(also_refresh)
    )
    assess.refresh_potholes(rt, session, potholes)
    rt.kick_alerts()
