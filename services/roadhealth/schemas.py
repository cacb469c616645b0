"""Request and response models of the road-health API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

HEX32 = r"^[0-9a-f]{64}$"
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
    payload: dict[str, Any]
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

    tx: dict[str, Any]


class ReceiptResponse(BaseModel):
    tx: str
    height: int
    status: str
    events: list[dict[str, Any]]


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
    data: dict[str, Any]
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


class Geometry(BaseModel):
    type: Literal["LineString", "Point"]
    coordinates: list[Any]


class Feature(BaseModel):
    """A segment (LineString) or a pothole (Point) with what the service knows of it."""

    type: Literal["Feature"]
    id: str | int
    geometry: Geometry
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[Feature]


# The body of POST /v1/segments as the document declares it (read raw: the domain checks the
# geometry and answers 422 malformed_geojson for what this cannot say)
SEGMENTS_IMPORT_BODY: dict[str, Any] = {
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


class ReadingProof(BaseModel):
    """A reading from the device's signature to a committed block."""

    payload: dict[str, Any]
    message_hash: str
    device: DeviceView
    signature_valid: bool
    anchor: dict[str, Any]
    bundle: dict[str, Any]
    device_bundle: dict[str, Any]
