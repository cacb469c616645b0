"""Request and response models of the road-health API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chain.json_types import JsonObject, JsonObjectAsIs

HEX32 = r"^[0-9a-f]{64}$"
# JsonObject: a JSON object answered as it is kept: a telemetry payload as its device signed it,
# an alert's data, a chain event's data, a proof bundle (docs/protocol.md, checked by chain.light)
MAX_BATCH = 5000


class Strict(BaseModel):
    # Strict types too: JSON `1.0` is no integer, as the document's types say
    model_config = ConfigDict(extra="forbid", strict=True)


class BatchRef(Strict):
    root: str = Field(pattern=HEX32)
    anchor_tx: str = Field(pattern=HEX32)
    count: int = Field(ge=1, le=MAX_BATCH)


class IngestMessage(Strict):
    topic: str = Field(min_length=1, max_length=256)
    # As the device signed it: checked to be an object here, its members by the domain (a
    # JsonObjectAsIs, as checking each member here would cost every message of a batch)
    payload: JsonObjectAsIs
    leaf_index: int = Field(ge=0, le=MAX_BATCH)
    hash: str = Field(pattern=HEX32)


class IngestRequest(Strict):
    batch: BatchRef
    messages: list[IngestMessage] = Field(min_length=1, max_length=MAX_BATCH)


class MessageResult(BaseModel):
    leaf_index: int
    status: Literal["stored", "duplicate", "rejected"]
    code: str | None = None
    message: str | None = None
    segment: str | None = None


class IngestResponse(BaseModel):
    anchor_tx: str
    root: str
    count: int
    stored: int
    duplicates: int
    rejected: int
    results: list[MessageResult]


class SignedTxRequest(Strict):
    """A transaction the road authority signed itself (see docs/roadhealth.md)."""

    tx: JsonObjectAsIs  # chain.tx's wire form, checked by tx_from_json


class ChainEvent(BaseModel):
    contract: str
    name: str
    data: JsonObject


class ReceiptResponse(BaseModel):
    tx: str
    height: int
    status: Literal["ok", "failed"]
    events: list[ChainEvent]


class DeviceView(BaseModel):
    device: str
    pub_key: str
    status: str
    vehicle_class: str
    home_segment: str | None = None
    since: int | None = None


class ImportResult(BaseModel):
    segments: int
    registered_tx: str | None
    ids: list[str]


class SeriesPoint(BaseModel):
    start: float
    windows: int
    iri: float | None
    iri_lower: float | None
    iri_upper: float | None
    pothole_reports: int


class SeriesResponse(BaseModel):
    segment: str
    bucket_s: int
    points: list[SeriesPoint]


class PriorityItem(BaseModel):
    rank: int
    segment: str
    name: str
    score: float
    condition: str | None
    iri: float | None
    trend_m_per_km_per_30d: float | None
    confirmed_potholes: int
    windows_per_day: float
    reasons: list[str]


class AlertView(BaseModel):
    id: int
    kind: str
    segment: str
    data: JsonObject
    chain_tx: str | None
    created_at: float
    delivered: int
    attempts: int
    last_error: str | None


class WebhookRequest(Strict):
    url: str = Field(pattern=r"^https?://", max_length=2048)


class WebhookView(BaseModel):
    id: int
    url: str
    created_by: str


# GeoJSON (RFC 7946) as the map routes answer it: positions are [longitude, latitude]
Position = tuple[float, float]


class PointGeometry(BaseModel):
    type: Literal["Point"]
    coordinates: Position


class LineStringGeometry(BaseModel):
    type: Literal["LineString"]
    coordinates: list[Position]


class PotholeProperties(BaseModel):
    segment: str
    status: Literal["candidate", "confirmed", "repaired", "dismissed"]
    chainage_m: float  # along its segment, from its first vertex
    reports: int
    vehicles: int
    confidence: float
    confirmed_tx: str | None  # the chain transaction that confirmed it
    models: list[str]  # ids of the classifier models that judged its reports
    # Once vehicles pass it without a report (docs/roadhealth.md): a confirmed pothole is
    # repaired (the window time of the pass that closed it, and the repair's anchor), a
    # candidate never confirmed is dismissed (that time; no anchor)
    repaired_at: float | None = None
    repaired_tx: str | None = None
    dismissed_at: float | None = None


class PotholeFeature(BaseModel):
    """A pothole: where it is and how sure the service is of it."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: PointGeometry
    properties: PotholeProperties


class SegmentProperties(BaseModel):
    """What the service knows of a segment, after the properties it was imported with."""

    # Besides these, the properties the segment's feature was imported with (minus its id)
    model_config = ConfigDict(extra="allow")

    name: str
    length_m: float
    geometry_hash: str  # what the chain records for the segment
    condition: Literal["good", "fair", "poor"] | None
    iri_m_per_km: float | None
    iri_90: tuple[float, float] | None  # the 90% interval of iri_m_per_km
    windows: int
    condition_tx: str | None  # the chain transaction that recorded the condition
    potholes: list[PotholeFeature]


class SegmentFeature(BaseModel):
    """A road segment (LineString) with its condition and its potholes."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: LineStringGeometry
    properties: SegmentProperties


class SegmentCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[SegmentFeature]


class PotholeCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[PotholeFeature]


# The body of POST /v1/segments as the document declares it (read raw: the domain checks the
# geometry and answers 422 malformed_geojson for what this cannot say)
SEGMENTS_IMPORT_BODY: JsonObject = {
    "required": True,
    "content": {
        media: {
            "schema": {
                "type": "object",
                "required": ["type", "features"],
                "properties": {
                    "type": {"const": "FeatureCollection"},
                    "features": {"type": "array", "items": {"type": "object"}},
                },
            }
        }
        for media in ("application/geo+json", "application/json")
    },
}


class ReadingAnchor(BaseModel):
    """The batch a reading was anchored in: its transaction, Merkle root and the reading's leaf."""

    tx: str
    root: str
    leaf_index: int
    count: int


class ReadingProof(BaseModel):
    """A reading from the device's signature to a committed block."""

    payload: JsonObject
    message_hash: str
    device: DeviceView
    signature_valid: bool
    anchor: ReadingAnchor
    bundle: JsonObject  # the anchor transaction's bundle with the record's audit path
    device_bundle: JsonObject  # the device's registry record with its state proof
