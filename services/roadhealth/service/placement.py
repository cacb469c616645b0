"""Where a batch's windows lie: stored with their headings among their device's neighbours,
matched to a segment, and the stored neighbours whose heading a new window changes matched
again (headings.py). Runs with the batch's devices locked (locks.py), so the neighbours read
are all a device has stored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Row,
    String,
    Table,
    and_,
    bindparam,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from chain.db import driver_mark
from services.roadhealth.assessment.windows import WindowAnalysis, window_length_m
from services.roadhealth.models import RhWindow
from services.roadhealth.network.headings import Fix, heading_of
from services.roadhealth.network.matching import Match
from services.roadhealth.runtime import Runtime
from services.roadhealth.schemas import BatchRef, MessageResult
from services.roadhealth.wire import Telemetry

NEIGHBOURS = (-2, -1, 0, 1, 2)  # the seqs around a window whose headings it may change
KEYS_PER_QUERY = 500
# What store_windows writes of a window (every column but the id)
INSERTED = (
    "device",
    "seq",
    "hash",
    "payload",
    "topic",
    "t0",
    "rate_hz",
    "lat",
    "lon",
    "speed_mps",
    "samples",
    "vehicle_class",
    "anchor_tx",
    "leaf_index",
    "root",
    "segment",
    "chainage_m",
    "direction",
    "heading_deg",
    "iri",
    "iri_log_std",
    "anomalies",
)
WINDOWS = cast(Table, RhWindow.__table__)
NEARBY_COLUMNS = (
    RhWindow.id,
    RhWindow.device,
    RhWindow.seq,
    RhWindow.hash,
    RhWindow.t0,
    RhWindow.lat,
    RhWindow.lon,
    RhWindow.speed_mps,
    RhWindow.samples,
    RhWindow.rate_hz,
    RhWindow.heading_deg,
    RhWindow.segment,
    RhWindow.chainage_m,
    RhWindow.direction,
    RhWindow.anomalies,
)


@dataclass
class Accepted:
    """A message that passed every check, with its window's analysis."""

    leaf_index: int
    telemetry: Telemetry
    payload: str  # canonical JSON, exactly what was hashed
    hash: str
    topic: str
    vehicle_class: str
    analysis: WindowAnalysis


@dataclass
class Placed:
    """A stored window as assessment needs it: where it lies and what it detected."""

    id: int | None  # read back only when it files pothole reports
    device: str
    hash: str
    t0: float
    segment: str | None
    chainage_m: float | None
    direction: int
    anomalies: list[dict[str, Any]]
    was_on: str | None = None  # the segment a window matched again lay on before
    span_m: float = 0.0  # road it covers from its start (speed x duration); 0 when matched again


def stored_near(*, session: Session, accepted: list[Accepted]) -> dict[tuple[str, int], Row[Any]]:
    """The stored windows with the seqs of the batch's windows and of their neighbours (read
    with the devices held, so nothing of theirs is being stored meanwhile)."""
    keys = sorted({(a.telemetry.device, a.telemetry.seq + k) for a in accepted for k in NEIGHBOURS})
    return {(r.device, r.seq): r for r in _windows_at(session, keys, NEARBY_COLUMNS)}


def _windows_at(
    session: Session, keys: list[tuple[str, int]], columns: tuple[Any, ...]
) -> list[Row[Any]]:
    """The stored windows at these (device, seq) keys."""
    if not keys:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # Two array parameters: one statement text whatever the number of keys, so it is
        # parsed and planned once (an IN list of thousands of pairs was a tenth of the cost)
        at = (
            func.unnest(
                bindparam("devices", [d for d, _ in keys], type_=ARRAY(String)),
                bindparam("seqs", [s for _, s in keys], type_=ARRAY(BigInteger)),
            )
            .table_valued("device", "seq")
            .render_derived(name="at")
        )
        return list(
            session.execute(
                select(*columns).join(
                    at, and_(RhWindow.device == at.c.device, RhWindow.seq == at.c.seq)
                )
            ).all()
        )
    rows: list[Row[Any]] = []
    for start in range(0, len(keys), KEYS_PER_QUERY):
        part = keys[start : start + KEYS_PER_QUERY]
        rows += session.execute(
            select(*columns).where(tuple_(RhWindow.device, RhWindow.seq).in_(part))
        ).all()
    return rows


def starts_by_device(
    *, new: list[Accepted], nearby: dict[tuple[str, int], Row[Any]]
) -> dict[str, dict[int, Fix]]:
    """Each device's window starts known around the batch: stored ones and the batch's own."""
    starts: dict[str, dict[int, Fix]] = {}
    for (device, seq), r in nearby.items():
        travel = window_length_m(r.speed_mps, r.samples, r.rate_hz)
        starts.setdefault(device, {})[seq] = Fix(seq, float(r.t0), r.lat, r.lon, travel)
    for a in new:
        t = a.telemetry
        travel = window_length_m(t.speed_mps, len(t.acc_z), t.rate_hz)
        starts.setdefault(t.device, {})[t.seq] = Fix(t.seq, t.t0, t.lat, t.lon, travel)
    return starts


def store_windows(
    *,
    rt: Runtime,
    session: Session,
    batch: BatchRef,
    new: list[Accepted],
    fixes: dict[str, dict[int, Fix]],
    results: dict[int, MessageResult],
) -> list[Placed]:
    """Insert the new windows, each matched with its heading among its neighbours."""
    if not new:
        return []
    rows: list[dict[str, Any]] = []
    for a in new:
        t, analysis = a.telemetry, a.analysis
        fix = fixes[t.device][t.seq]
        heading = heading_of(fixes[t.device], t.seq)
        match = match_start(rt=rt, lat=t.lat, lon=t.lon, travel_m=fix.travel_m, heading=heading)
        rows.append(
            {
                "device": t.device,
                "seq": t.seq,
                "hash": a.hash,
                "payload": a.payload,
                "topic": a.topic,
                "t0": t.t0,
                "rate_hz": t.rate_hz,
                "lat": t.lat,
                "lon": t.lon,
                "speed_mps": t.speed_mps,
                "samples": len(t.acc_z),
                "vehicle_class": a.vehicle_class,
                "anchor_tx": batch.anchor_tx,
                "leaf_index": a.leaf_index,
                "root": batch.root,
                "segment": None if match is None else match.segment,
                "chainage_m": None if match is None else match.chainage_m,
                "direction": 0 if match is None else match.direction,
                "heading_deg": heading,
                "iri": analysis.iri,
                "iri_log_std": analysis.iri_log_std,
                "anomalies": [e.as_json() for e in analysis.events],
            }
        )
    # The driver's executemany without RETURNING: a quarter of the ORM's cost per row, and
    # SQLAlchemy's per-row parameter processing skipped too; the ids are read back only for
    # the windows that will file pothole reports
    _insert_windows(session, rows)
    reporting = [
        (r["device"], r["seq"]) for r in rows if r["direction"] and reports(r["anomalies"])
    ]
    ids = _ids(session, reporting)
    placed = []
    for a, row in zip(new, rows, strict=True):
        results[a.leaf_index] = MessageResult(
            leaf_index=a.leaf_index, status="stored", segment=row["segment"]
        )
        placed.append(
            Placed(
                ids.get((row["device"], row["seq"])),
                row["device"],
                row["hash"],
                row["t0"],
                row["segment"],
                row["chainage_m"],
                row["direction"],
                row["anomalies"],
                span_m=row["speed_mps"] * row["samples"] / row["rate_hz"],
            )
        )
    return placed


def _insert_windows(session: Session, rows: list[dict[str, Any]]) -> None:
    """INSERT the rows through the driver: each row's values in INSERTED's order (anomalies
    last), anomalies as the JSON column writes them (json.dumps, SQLAlchemy's default
    serialiser)."""
    conn = session.connection()
    columns, marks = ", ".join(INSERTED), ", ".join([driver_mark(conn)] * len(INSERTED))
    sql = f"INSERT INTO {WINDOWS.name} ({columns}) VALUES ({marks})"  # noqa: S608 (our names)
    conn.exec_driver_sql(
        sql,
        [(*(r[c] for c in INSERTED[:-1]), _json_list(r["anomalies"])) for r in rows],
    )


def _json_list(values: list[dict[str, Any]]) -> str:
    """json.dumps of a window's events; most windows have none, "[]" without the encoder."""
    return json.dumps(values) if values else "[]"


def revisit_neighbours(
    *,
    rt: Runtime,
    session: Session,
    new: list[Accepted],
    nearby: dict[tuple[str, int], Row[Any]],
    fixes: dict[str, dict[int, Fix]],
) -> list[Placed]:
    """Work out again the heading of each stored window next to a new one (its successor or
    its predecessor came later) and match it again where the heading changed."""
    beside = {(a.telemetry.device, a.telemetry.seq + k) for a in new for k in (-1, 1)}
    touched = sorted(beside & nearby.keys())
    revisited, changes = [], []
    for device, seq in touched:
        row = nearby[(device, seq)]
        heading = heading_of(fixes[device], seq)
        if heading == row.heading_deg:
            continue
        match = match_start(
            rt=rt, lat=row.lat, lon=row.lon, travel_m=fixes[device][seq].travel_m, heading=heading
        )
        placed = Placed(
            row.id,
            device,
            row.hash,
            float(row.t0),
            None if match is None else match.segment,
            None if match is None else match.chainage_m,
            0 if match is None else match.direction,
            row.anomalies,
            was_on=row.segment,
        )
        revisited.append(placed)
        changes.append(
            {
                "window_id": row.id,
                "heading": heading,
                "on": placed.segment,
                "at_m": placed.chainage_m,
                "way": placed.direction,
            }
        )
    if changes:
        session.execute(
            update(WINDOWS)
            .where(WINDOWS.c.id == bindparam("window_id"))
            .values(
                heading_deg=bindparam("heading"),
                segment=bindparam("on"),
                chainage_m=bindparam("at_m"),
                direction=bindparam("way"),
            ),
            changes,
        )
    return revisited


def reports(anomalies: list[dict[str, Any]]) -> bool:
    """Whether a window's events include one to file as a pothole report (from a matched
    window with a direction of travel)."""
    return any(is_reported(e) for e in anomalies)


def is_reported(event: dict[str, Any]) -> bool:
    """A pothole the classifier confirms (not a bump, nor one it calls plain road)."""
    return bool(event.get("reported", event["kind"] == "pothole"))


def _ids(session: Session, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    rows = _windows_at(session, keys, (RhWindow.device, RhWindow.seq, RhWindow.id))
    return {(r.device, r.seq): r.id for r in rows}


def match_start(
    *, rt: Runtime, lat: float, lon: float, travel_m: float, heading: float | None
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
