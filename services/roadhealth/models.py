"""Road-health tables (off-chain): segments, device mirror, batches, windows, potholes, alerts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import Base


class RhSegment(Base):
    __tablename__ = "roadhealth_segments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    length_m: Mapped[float] = mapped_column(Float)
    geometry_hash: Mapped[str] = mapped_column(String(64))
    registered_tx: Mapped[str | None] = mapped_column(String(64))
    condition: Mapped[str | None] = mapped_column(String(8))
    iri: Mapped[float | None] = mapped_column(Float)
    iri_lower: Mapped[float | None] = mapped_column(Float)
    iri_upper: Mapped[float | None] = mapped_column(Float)
    windows: Mapped[int] = mapped_column(Integer, default=0)
    condition_tx: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[float | None] = mapped_column(Float)


class RhConditionWatch(Base):
    """A segment's pending class change (condition.py): the class its estimate points to and
    the window time it first did; gone once the change is recorded or the estimate returns."""

    __tablename__ = "roadhealth_condition_watch"

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    candidate: Mapped[str] = mapped_column(String(8))
    since_t0: Mapped[float] = mapped_column(Float)


class RhNetwork(Base):
    """The road network's version (one row, id 1): an import bumps it, so every process that
    shares the database reloads its segment index before it matches another window."""

    __tablename__ = "roadhealth_network"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class RhDeviceLock(Base):
    """A row per device that sent windows, locked by each batch holding windows of it (locks.py):
    batches with windows of one device are stored one after the other, whichever process
    takes them, because deduplication and headings read what the device's earlier ones stored."""

    __tablename__ = "roadhealth_device_locks"

    device: Mapped[str] = mapped_column(String(64), primary_key=True)


class RhDevice(Base):
    """A mirror of the on-chain registry for listing; the chain stays the authority."""

    __tablename__ = "roadhealth_devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pub_key: Mapped[str] = mapped_column(String(130))  # a chain key: 64 hex (Ed25519) or 130 (SM2)
    vehicle_class: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    home_segment: Mapped[str | None] = mapped_column(String(64))
    last_tx: Mapped[str] = mapped_column(String(64))


class RhBatch(Base):
    __tablename__ = "roadhealth_batches"

    anchor_tx: Mapped[str] = mapped_column(String(64), primary_key=True)
    root: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    org: Mapped[str] = mapped_column(String(64))
    leaves: Mapped[list[str]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[float] = mapped_column(Float)


class RhWindow(Base):
    __tablename__ = "roadhealth_windows"
    __table_args__ = (UniqueConstraint("device", "seq", name="roadhealth_windows_device_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly what was hashed
    topic: Mapped[str] = mapped_column(String(256))
    t0: Mapped[float] = mapped_column(Float, index=True)
    rate_hz: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    speed_mps: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    vehicle_class: Mapped[str] = mapped_column(String(16))
    anchor_tx: Mapped[str] = mapped_column(String(64), index=True)
    leaf_index: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(64))
    segment: Mapped[str | None] = mapped_column(String(64), index=True)
    chainage_m: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[int] = mapped_column(Integer, default=0)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    iri: Mapped[float | None] = mapped_column(Float)
    iri_log_std: Mapped[float | None] = mapped_column(Float)
    anomalies: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


# A segment's newest windows (conditions.recent_rows), read on every ingest: a search from the
# newest end whatever the segment's history (ranking all its windows cost ~2.3 us per window).
# A database made before it gets it at start (services.common.db.prepare_schema)
WINDOWS_NEWEST = Index(
    "ix_roadhealth_windows_segment_newest",
    RhWindow.segment,
    RhWindow.t0.desc(),
    RhWindow.hash.desc(),
)


class RhPothole(Base):
    __tablename__ = "roadhealth_potholes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    segment: Mapped[str] = mapped_column(String(64), index=True)
    chainage_m: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    reports: Mapped[int] = mapped_column(Integer)
    vehicles: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # candidate | confirmed | repaired | dismissed
    confirmed_tx: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


# The open potholes near a new report or under a passing window, read by chainage on every
# ingest whatever the segment's history (service/potholes.py, service/repairs.py). A database
# made before it gets it at start (services.common.db.prepare_schema)
POTHOLES_ALONG = Index(
    "ix_roadhealth_potholes_segment_status_chainage",
    RhPothole.segment,
    RhPothole.status,
    RhPothole.chainage_m,
)


class RhPotholeWatch(Base):
    """The vehicles that passed over an open pothole without a report since its last one
    (service/repairs.py), and, once enough did, when it closed (repaired, or dismissed if never
    confirmed) and the repair's anchor.

    A table of its own, not columns of roadhealth_potholes: a database made by an earlier
    release gets a missing table at start, never a missing column. No row: no clean pass yet.
    """

    __tablename__ = "roadhealth_pothole_watch"

    pothole: Mapped[str] = mapped_column(String(128), primary_key=True)
    passes: Mapped[int] = mapped_column(Integer, default=0)
    vehicles: Mapped[list[str]] = mapped_column(JSON)  # distinct devices, as many as needed
    windows: Mapped[list[str]] = mapped_column(JSON)  # message hashes of the clean passes
    repaired_at: Mapped[float | None] = mapped_column(Float)  # the closing window's t0, either way
    repaired_tx: Mapped[str | None] = mapped_column(String(64))  # its anchor, if confirmed


class RhPotholeReport(Base):
    __tablename__ = "roadhealth_pothole_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("roadhealth_windows.id"), index=True)
    pothole: Mapped[str] = mapped_column(String(128), index=True)
    device: Mapped[str] = mapped_column(String(64))
    chainage_m: Mapped[float] = mapped_column(Float)
    peak_mps2: Mapped[float] = mapped_column(Float)
    message_hash: Mapped[str] = mapped_column(String(64))
    t0: Mapped[float] = mapped_column(Float)


# Whether a vehicle reported a pothole before: a pothole's vehicle count kept without reading
# all its reports (service/potholes.py); built at start on an older database, as above
REPORTS_BY_DEVICE = Index(
    "ix_roadhealth_pothole_reports_pothole_device",
    RhPotholeReport.pothole,
    RhPotholeReport.device,
)


class RhAlert(Base):
    __tablename__ = "roadhealth_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # condition_changed | pothole_confirmed | pothole_repaired
    kind: Mapped[str] = mapped_column(String(32))
    segment: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    chain_tx: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    delivered: Mapped[int] = mapped_column(Integer, default=0)  # webhook deliveries that succeeded
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    pending: Mapped[int] = mapped_column(Integer, default=1, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)


class RhWebhook(Base):
    __tablename__ = "roadhealth_webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
