"""Thin routers: authenticate, parse, call the domain, return its answer."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from chain.auth import Caller
from chain.bodies import BoundedBody
from chain.encoding import parse_json
from chain.errors import EncodingError
from services.common.auth import require_role
from services.common.db import committed_before_response
from services.common.errors import ServiceError
from services.common.openapi import CHAIN_WRITE, REQUEST_CHECKS, chain_refusals, raises
from services.roadhealth import service
from services.roadhealth.chain import RoadHealthChain
from services.roadhealth.errors import (
    AnchorNotCommitted,
    BadBatch,
    BadDeviceTx,
    BadGeoJson,
    BatchConflict,
    OutOfRange,
    UnknownDevice,
    UnknownReading,
    UnknownSegment,
)
from services.roadhealth.runtime import Runtime
from services.roadhealth.schemas import (
    SEGMENTS_IMPORT_BODY,
    AlertView,
    DeviceView,
    ImportResult,
    IngestRequest,
    IngestResponse,
    PotholeCollection,
    PriorityItem,
    ReadingProof,
    ReceiptResponse,
    SegmentCollection,
    SegmentFeature,
    SeriesResponse,
    SignedTxRequest,
    WebhookRequest,
    WebhookView,
)
from services.roadhealth.wire import MAX_SEQ

AUTHORITY = "road_authority"
READERS = ("road_authority", "agency", "regulator")
GEOJSON = "application/geo+json"
MAX_IMPORT_BYTES = 16 * 1024 * 1024


class GeoJsonResponse(JSONResponse):
    media_type = GEOJSON

    @classmethod
    def of(cls, doc: SegmentCollection | SegmentFeature | PotholeCollection) -> "GeoJsonResponse":
        return cls(doc.model_dump(mode="json"))


def _geojson(
    model: type[SegmentCollection | SegmentFeature | PotholeCollection],
    what: str,
    *errors: type[ServiceError],
) -> dict[str, Any]:
    """The route options declaring a GeoJSON answer (RFC 7946's media type) with its schema,
    and the errors the route raises."""
    return {
        "response_class": GeoJsonResponse,
        "responses": {200: {"model": model, "description": what}, **raises(*errors)},
    }


def _import_too_large() -> BadGeoJson:
    return BadGeoJson(f"the document is over {MAX_IMPORT_BYTES} bytes")


# The raw request body (GeoJSON is parsed by the domain), refused once it passes the limit
read_import = BoundedBody(MAX_IMPORT_BYTES, _import_too_large)


def build_router(
    rt: Runtime,
    authenticate: Callable[[Request], Caller],
    get_session: Callable[..., Any],
) -> APIRouter:
    router = APIRouter(
        prefix="/v1",
        dependencies=REQUEST_CHECKS,
    )
    SessionDep = Annotated[Session, committed_before_response(get_session)]
    Reader = Annotated[Caller, Depends(require_role(authenticate, *READERS))]
    Authority = Annotated[Caller, Depends(require_role(authenticate, AUTHORITY))]
    Operator = Annotated[Caller, Depends(require_role(authenticate, "operator"))]
    RawBody = Annotated[bytes, Depends(read_import)]

    @router.post(
        "/ingest",
        response_model=IngestResponse,
        tags=["gateway"],
        responses=raises(
            BadBatch,
            AnchorNotCommitted,
            BatchConflict,
            *chain_refusals(RoadHealthChain),
            *CHAIN_WRITE,  # a batch's pothole confirmations are submitted together
        ),
    )
    def ingest_batch(body: IngestRequest, caller: Operator, session: SessionDep) -> IngestResponse:
        """Store an anchored batch of signed telemetry (docs/roadhealth-ingest.md)."""
        answer = service.ingest_batch(rt=rt, session=session, caller_org=caller.org, request=body)
        return IngestResponse.model_validate(answer)

    @router.get("/segments", tags=["segments"], **_geojson(SegmentCollection, "the segments"))
    def segments(_c: Reader, session: SessionDep, candidates: bool = False) -> GeoJsonResponse:
        """Every segment with condition, IRI and potholes (GeoJSON FeatureCollection)."""
        doc = service.segments_geojson(session=session, include_candidates=candidates)
        return GeoJsonResponse.of(doc)

    @router.post(
        "/segments",
        response_model=ImportResult,
        tags=["segments"],
        openapi_extra={"requestBody": SEGMENTS_IMPORT_BODY},
        responses=raises(BadGeoJson, *chain_refusals(RoadHealthChain)),
    )
    def import_segments(body: RawBody, caller: Authority, session: SessionDep) -> ImportResult:
        """Import a GeoJSON FeatureCollection of LineStrings, registering each on the chain."""
        try:
            doc = parse_json(body)
        except EncodingError as exc:
            raise BadGeoJson(f"not JSON: {exc}") from exc
        return service.import_segments(rt=rt, session=session, doc=doc, requested_by=caller.org)

    @router.get(
        "/segments/{segment_id}",
        tags=["segments"],
        **_geojson(SegmentFeature, "the segment", UnknownSegment),
    )
    def segment(segment_id: str, _c: Reader, session: SessionDep) -> GeoJsonResponse:
        return GeoJsonResponse.of(service.segment_geojson(session=session, segment_id=segment_id))

    @router.get(
        "/segments/{segment_id}/series",
        response_model=SeriesResponse,
        tags=["segments"],
        responses=raises(UnknownSegment, OutOfRange),
    )
    def series(
        segment_id: str,
        _c: Reader,
        session: SessionDep,
        bucket_s: int = 86_400,
        since: float | None = None,
        until: float | None = None,
    ) -> SeriesResponse:
        """IRI over time for one segment, one point per bucket."""
        return service.segment_series(
            session=session, segment_id=segment_id, bucket_s=bucket_s, since=since, until=until
        )

    @router.get("/potholes", tags=["segments"], **_geojson(PotholeCollection, "the potholes"))
    def potholes(
        _c: Reader,
        session: SessionDep,
        candidates: bool = False,
        repaired: bool = False,
        dismissed: bool = False,
    ) -> GeoJsonResponse:
        found = service.potholes_geojson(
            session=session,
            include_candidates=candidates,
            include_repaired=repaired,
            include_dismissed=dismissed,
        )
        return GeoJsonResponse.of(found)

    @router.get(
        "/priorities",
        response_model=list[PriorityItem],
        tags=["maintenance"],
        responses=raises(OutOfRange),
    )
    def priorities(_c: Reader, session: SessionDep, limit: int = 50) -> list[PriorityItem]:
        """Segments ranked for repair, with the reasons."""
        return service.priorities(rt=rt, session=session, limit=limit)

    @router.get(
        "/alerts",
        response_model=list[AlertView],
        tags=["maintenance"],
        responses=raises(UnknownSegment, OutOfRange),
    )
    def alerts(
        _c: Reader, session: SessionDep, segment: str | None = None, limit: int = 100
    ) -> list[AlertView]:
        return service.list_alerts(session=session, segment=segment, limit=limit)

    @router.post("/webhooks", response_model=WebhookView, tags=["maintenance"])
    def add_webhook(body: WebhookRequest, caller: Authority, session: SessionDep) -> WebhookView:
        """Subscribe a URL to alerts (POSTed as JSON, retried with backoff)."""
        return service.add_webhook(session=session, url=body.url, created_by=caller.org)

    @router.get("/webhooks", response_model=list[WebhookView], tags=["maintenance"])
    def webhooks(_c: Authority, session: SessionDep) -> list[WebhookView]:
        return service.list_webhooks(session=session)

    @router.post(
        "/devices/tx",
        response_model=ReceiptResponse,
        tags=["devices"],
        responses=raises(
            BadDeviceTx, UnknownDevice, *chain_refusals(RoadHealthChain), *CHAIN_WRITE
        ),
    )
    def device_tx(body: SignedTxRequest, caller: Authority, session: SessionDep) -> ReceiptResponse:
        """Submit a register/suspend/reinstate transaction the road authority signed itself."""
        return service.submit_device_tx(
            rt=rt, session=session, caller_key=caller.key, tx_json=body.tx
        )

    @router.get("/devices", response_model=list[DeviceView], tags=["devices"])
    def devices(_c: Reader, session: SessionDep) -> list[DeviceView]:
        return service.list_devices(session=session)

    @router.get(
        "/devices/{device}",
        response_model=DeviceView,
        tags=["devices"],
        responses=raises(UnknownDevice),
    )
    def device(device: str, _c: Reader) -> DeviceView:
        """The device's record as the chain holds it."""
        return service.get_device(rt=rt, device=device)

    @router.get(
        "/readings/{device}/{seq}/proof",
        response_model=ReadingProof,
        tags=["proofs"],
        responses=raises(UnknownDevice, UnknownReading),
    )
    def proof(
        device: str,
        seq: Annotated[int, Path(ge=0, le=MAX_SEQ)],
        _c: Reader,
        session: SessionDep,
    ) -> ReadingProof:
        """A reading from the device's signature to a committed block (offline-verifiable)."""
        return service.reading_proof(rt=rt, session=session, device=device, seq=seq)

    return router
