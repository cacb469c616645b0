"""Simulated roads and what every simulated pass over one shares.

A segment is a polyline with an ISO 8608 profile (services.roadhealth.analytics) whose roughness
is set by a target IRI, with potholes and bumps at known places. A pass over it is a ride
(`simulate_phone_ride`) cut into windows back to back; each window reports the position of its
first sample with GPS jitter. Both the MQTT fleet (`messages.Fleet`) and the planned passes of
`passes.PassFleet` are built from these pieces.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from services.roadhealth.analytics.iri import classify_condition
from services.roadhealth.analytics.profile import (
    Anomaly,
    RoadProfile,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import Ride

EARTH_RADIUS_M = 6_371_000.0


def road_profile(
    *, length_m: float, iri_m_per_km: float, seed: int, anomalies: tuple[Anomaly, ...]
) -> RoadProfile:
    """A road surface of about `iri_m_per_km` roughness with the given potholes and bumps."""
    return generate_road_profile(
        length_m=length_m,
        seed=seed,
        gd_n0_m3=estimate_gd_n0_for_iri(iri_m_per_km),
        anomalies=anomalies,
    )


def ride_windows(
    ride: Ride, *, per_window: int, min_samples: int
) -> Iterator[tuple[int, list[float]]]:
    """(first sample, rounded vertical accelerations) of each window cut back to back from a
    ride; a last, shorter window goes out only when it holds at least `min_samples`."""
    size = ride.acc_z_mps2.size
    for start in range(0, size, per_window):
        if min(per_window, size - start) >= min_samples:
            samples = ride.acc_z_mps2[start : start + per_window]
            yield start, [round(float(v), 4) for v in samples]


def jittered(
    lat: float, lon: float, sigma_m: float, rng: np.random.Generator
) -> tuple[float, float]:
    """A GPS fix: the true position moved by a normal error of `sigma_m` north and east."""
    north, east = rng.normal(0.0, sigma_m, size=2) / EARTH_RADIUS_M
    return (
        lat + math.degrees(north),
        lon + math.degrees(east) / math.cos(math.radians(lat)),
    )


@dataclass(frozen=True)
class Segment:
    """A road segment: its polyline (lon, lat) and the profile a vehicle drives on it."""

    id: str
    coordinates: tuple[tuple[float, float], ...]
    profile: RoadProfile

    @property
    def length_m(self) -> float:
        return self.profile.length_m

    def position(self, distance_m: float) -> tuple[float, float]:
        """Latitude and longitude at a distance along the polyline (clamped to its ends)."""
        lon0, lat0 = self.coordinates[0]
        scale = math.cos(math.radians(lat0))
        points = [
            (
                math.radians(lo - lon0) * EARTH_RADIUS_M * scale,
                math.radians(la - lat0) * EARTH_RADIUS_M,
            )
            for lo, la in self.coordinates
        ]
        remaining = max(0.0, distance_m)
        for (x0, y0), (x1, y1) in pairwise(points):
            step = math.hypot(x1 - x0, y1 - y0)
            if remaining <= step or (x1, y1) == points[-1]:
                f = min(1.0, remaining / step) if step else 0.0
                x, y = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
                break
            remaining -= step
        else:
            x, y = points[-1]
        lat = lat0 + math.degrees(y / EARTH_RADIUS_M)
        lon = lon0 + math.degrees(x / (EARTH_RADIUS_M * scale))
        return lat, lon

    def truth(self) -> dict[str, Any]:
        iri = self.profile.iri_m_per_km
        return {
            "id": self.id,
            "length_m": round(self.length_m, 3),
            "iri_m_per_km": round(iri, 4),
            "condition": classify_condition(iri),
            "gd_n0_m3": self.profile.gd_n0_m3,
            "geometry": self.geometry(),
            "anomalies": [
                {
                    "kind": a.kind,
                    "position_m": round(a.position_m, 3),
                    "length_m": round(a.length_m, 3),
                    "depth_m": round(a.depth_m, 4),
                    "lat": round(self.position(a.position_m)[0], 7),
                    "lon": round(self.position(a.position_m)[1], 7),
                }
                for a in self.profile.anomalies
            ],
        }

    def geometry(self) -> dict[str, Any]:
        """GeoJSON LineString of the segment (lon, lat order)."""
        return {
            "type": "LineString",
            "coordinates": [[round(lo, 7), round(la, 7)] for lo, la in self.coordinates],
        }


def polyline_length_m(coordinates: Sequence[tuple[float, float]]) -> float:
    """Length of a (lon, lat) polyline on a local flat projection."""
    lat0 = coordinates[0][1]
    scale = math.cos(math.radians(lat0))
    total = 0.0
    for (lo0, la0), (lo1, la1) in pairwise(coordinates):
        dx = math.radians(lo1 - lo0) * EARTH_RADIUS_M * scale
        dy = math.radians(la1 - la0) * EARTH_RADIUS_M
        total += math.hypot(dx, dy)
    return total


def default_geojson_path() -> Path:
    """The road-health demo network, so simulated windows match its segments."""
    import services.roadhealth

    return Path(services.roadhealth.__file__).parent / "demo" / "network.geojson"


def read_polylines(doc: dict[str, Any]) -> list[tuple[str, tuple[tuple[float, float], ...]]]:
    """(segment id, polyline) of each LineString feature of a GeoJSON FeatureCollection."""
    out = []
    for feature in doc.get("features", []):
        geometry = feature.get("geometry") or {}
        if geometry.get("type") != "LineString":
            continue
        sid = feature.get("id") or (feature.get("properties") or {}).get("id")
        coords = tuple((float(c[0]), float(c[1])) for c in geometry["coordinates"])
        out.append((str(sid), coords))
    return out


def synthetic_polylines(
    n_segments: int, length_m: float, origin: tuple[float, float]
) -> list[tuple[str, tuple[tuple[float, float], ...]]]:
    """Straight segments laid along a staircase of streets, 30 m junctions between them."""
    lat, lon = origin
    out: list[tuple[str, tuple[tuple[float, float], ...]]] = []
    for i in range(n_segments):
        heading = math.radians(90.0 if i % 2 == 0 else 0.0)
        dlat = math.degrees(length_m * math.cos(heading) / EARTH_RADIUS_M)
        dlon = math.degrees(
            length_m * math.sin(heading) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
        )
        out.append((f"seg-{i:03d}", ((lon, lat), (lon + dlon, lat + dlat))))
        lat, lon = lat + dlat * (length_m + 30) / length_m, lon + dlon * (length_m + 30) / length_m
    return out
