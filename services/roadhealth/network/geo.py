"""GeoJSON road segments: strict parsing, geometry hashes, local metric projection, bearings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from chain.encoding import hash_json
from chain.json_types import NOT_UNICODE_TEXT, is_unicode_text
from services.roadhealth.errors import BadGeoJson

EARTH_RADIUS_M = 6_371_008.8
SEGMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_FEATURES = 5000
MAX_VERTICES = 10_000
MIN_LENGTH_M = 1.0


@dataclass(frozen=True)
class Segment:
    """A road segment: id, name, and its LineString as (lon, lat) vertices."""

    id: str
    name: str
    coordinates: tuple[tuple[float, float], ...]
    properties: dict[str, Any]

    @property
    def geometry(self) -> dict[str, Any]:
        return {"type": "LineString", "coordinates": [list(c) for c in self.coordinates]}

    @property
    def geometry_hash(self) -> str:
        """SHA-256 of the canonical GeoJSON geometry: what the chain records."""
        return hash_json(self.geometry)

    @property
    def length_m(self) -> float:
        return sum(
            distance_m(a[1], a[0], b[1], b[0])
            for a, b in zip(self.coordinates, self.coordinates[1:], strict=False)
        )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(x, y)) % 360.0


@dataclass(frozen=True)
class LocalFrame:
    """Equirectangular projection around a reference point: metres east and north (city scale)."""

    lat0: float
    lon0: float

    def to_xy(self, lat: float, lon: float) -> tuple[float, float]:
        k = math.pi / 180 * EARTH_RADIUS_M
        return (lon - self.lon0) * k * math.cos(math.radians(self.lat0)), (lat - self.lat0) * k

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        k = math.pi / 180 * EARTH_RADIUS_M
        return self.lat0 + y / k, self.lon0 + x / (k * math.cos(math.radians(self.lat0)))


def parse_feature_collection(doc: Any) -> list[Segment]:
    """Segments from a GeoJSON FeatureCollection of LineStrings, or BadGeoJson saying where."""
    # Verify the document is a FeatureCollection with a list of features
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise BadGeoJson("expected a GeoJSON object with type FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise BadGeoJson("features must be a non-empty list")
    if len(features) > MAX_FEATURES:
        raise BadGeoJson(f"at most {MAX_FEATURES} features per import")
    segments = [_parse_feature(f, i) for i, f in enumerate(features)]
    seen: set[str] = set()
    for i, seg in enumerate(segments):
        if seg.id in seen:
            raise BadGeoJson(f"features[{i}]: segment id {seg.id!r} appears twice")
        seen.add(seg.id)
    return segments


def _parse_feature(feature: Any, i: int) -> Segment:
    where = f"features[{i}]"
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise BadGeoJson(f"{where}: expected an object with type Feature")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise BadGeoJson(f"{where}: properties must be an object")
    # Verify they are Unicode text: they are stored and answered as they are, and a lone
    # surrogate escape in them made the import, or every later read of the segments, a 500
    if not is_unicode_text(props):
        raise BadGeoJson(f"{where}: the properties object {NOT_UNICODE_TEXT}")
    seg_id = feature.get("id", props.get("id"))
    if not isinstance(seg_id, str) or not SEGMENT_ID.fullmatch(seg_id):
        raise BadGeoJson(
            f"{where}: id (feature id or properties.id) must match {SEGMENT_ID.pattern}"
        )
    name = props.get("name", seg_id)
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise BadGeoJson(f"{where}: properties.name must be a string of 1..200 characters")
    coords = _parse_linestring(feature.get("geometry"), where)
    segment = Segment(seg_id, name, coords, {k: v for k, v in props.items() if k != "id"})
    if segment.length_m < MIN_LENGTH_M:
        raise BadGeoJson(f"{where}: the LineString is shorter than {MIN_LENGTH_M} m")
    return segment


def _parse_linestring(geometry: Any, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(geometry, dict) or geometry.get("type") != "LineString":
        raise BadGeoJson(f"{where}: geometry must be a LineString")
    coords = geometry.get("coordinates")
    if not isinstance(coords, list) or not 2 <= len(coords) <= MAX_VERTICES:
        raise BadGeoJson(f"{where}: a LineString needs 2..{MAX_VERTICES} positions")
    out: list[tuple[float, float]] = []
    for j, pos in enumerate(coords):
        if (
            not isinstance(pos, list)
            or not 2 <= len(pos) <= 3
            or not all(_finite_number(v) for v in pos)
        ):
            raise BadGeoJson(f"{where}: coordinates[{j}] must be [lon, lat] numbers")
        lon, lat = float(pos[0]), float(pos[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise BadGeoJson(f"{where}: coordinates[{j}] = [{lon}, {lat}] is outside WGS 84")
        out.append((lon, lat))
    return tuple(out)


def _finite_number(value: Any) -> bool:
    """Whether `value` is a JSON number a float holds (an integer past 1.8e308 is not)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large to convert to float
        return False
