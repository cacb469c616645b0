"""A simulated city network: road segments of known roughness and the vehicles that drive them.

`build_network` lays the segments (from a GeoJSON network or a synthetic street) with ISO 8608
profiles at target IRIs and planted potholes and bumps, and gives each vehicle a class, a speed
and a key reproducible from the seed. `Network.truth()` is what a scorer compares against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chain.crypto import SigningKey
from iot_gateway.simulator.roads import (
    Segment,
    polyline_length_m,
    read_polylines,
    road_profile,
    synthetic_polylines,
)
from services.roadhealth.analytics.iri import classify_condition, compute_iri
from services.roadhealth.analytics.profile import (
    RoadProfile,
    draw_anomalies,
    estimate_gd_n0_for_iri,
    generate_iso8608_elevation,
)
from services.roadhealth.analytics.response import CABIN, CabinResponse

VEHICLE_CLASSES = ("car", "van", "bus")
# Target roughness of the demo network: good, fair and poor roads
TARGET_IRIS_M_PER_KM = (1.0, 1.3, 2.0, 2.4, 3.2, 4.5)


@dataclass(frozen=True)
class SimDevice:
    """A vehicle-mounted sensor: its id, key and vehicle class."""

    id: str
    key: SigningKey
    vehicle_class: str
    speed_mps: float


@dataclass
class Network:
    city: str
    segments: list[Segment]
    devices: list[SimDevice]
    rate_hz: int
    seed: int

    changes: list[dict[str, Any]] = field(default_factory=list)
    # Potholes and bumps as a cabin-mounted phone records them (None: the quarter-car's spike,
    # which real phones do not record)
    cabin: CabinResponse | None = CABIN

    def roughen(self, segment_id: str, *, iri_m_per_km: float, seed: int = 0) -> Segment:
        """Let a segment deteriorate: added ISO 8608 roughness (the PSD levels add) brings its
        IRI to about `iri_m_per_km`; its potholes and bumps stay. Passes that start afterwards
        drive the new surface; the change is kept in `changes` and the truth."""
        i = next((k for k, s in enumerate(self.segments) if s.id == segment_id), None)
        if i is None:
            raise ValueError(f"unknown segment {segment_id!r}")
        old = self.segments[i]
        if old.profile.iri_m_per_km >= iri_m_per_km:
            raise ValueError(f"{segment_id} is already at least as rough as {iri_m_per_km} m/km")
        spacing = old.profile.spacing_m
        added = generate_iso8608_elevation(
            length_m=old.profile.length_m,
            spacing_m=spacing,
            gd_n0_m3=estimate_gd_n0_for_iri(iri_m_per_km),
            rng=np.random.default_rng([self.seed, i, seed]),
        )[: old.profile.elevation_m.size]
        # Scale the added roughness until the road's IRI is the one asked for (bisection)
        low, high = 0.0, 4.0
        for _ in range(30):
            mid = (low + high) / 2
            if compute_iri(old.profile.elevation_m + mid * added, spacing) < iri_m_per_km:
                low = mid
            else:
                high = mid
        elevation = old.profile.elevation_m + high * added
        profile = RoadProfile(
            elevation,
            spacing,
            old.profile.gd_n0_m3 + high**2 * estimate_gd_n0_for_iri(iri_m_per_km),
            old.profile.anomalies,
            compute_iri(elevation, spacing),
        )
        self.segments[i] = Segment(old.id, old.coordinates, profile)
        self.changes.append(
            {
                "segment": segment_id,
                "kind": "roughened",
                "iri_before": round(old.profile.iri_m_per_km, 4),
                "iri_after": round(profile.iri_m_per_km, 4),
                "condition_before": classify_condition(old.profile.iri_m_per_km),
                "condition_after": classify_condition(profile.iri_m_per_km),
            }
        )
        return self.segments[i]

    def truth(self) -> dict[str, Any]:
        """Everything a scorer needs: segments, anomalies, devices and their keys' public parts."""
        return {
            "city": self.city,
            "seed": self.seed,
            "rate_hz": self.rate_hz,
            "segments": [s.truth() for s in self.segments],
            "changes": list(self.changes),
            "devices": [
                {
                    "device": d.id,
                    "pub_key": d.key.public_hex,
                    "vehicle_class": d.vehicle_class,
                    "speed_mps": d.speed_mps,
                }
                for d in self.devices
            ],
        }

    def geojson(self) -> dict[str, Any]:
        """The road network as a GeoJSON FeatureCollection of LineStrings."""
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": s.id,
                    "properties": {"id": s.id, "name": s.id},
                    "geometry": s.geometry(),
                }
                for s in self.segments
            ],
        }


def device_key(seed: int, device: str) -> SigningKey:
    """A device's key, reproducible from the simulation seed (simulations only)."""
    return SigningKey.from_seed(hashlib.sha256(f"sim:{seed}:{device}".encode()).digest())


def build_network(
    *,
    city: str = "demo",
    n_segments: int = 6,
    n_devices: int = 10,
    segment_length_m: float = 400.0,
    potholes_per_segment: int | Sequence[int] = 2,
    bumps_per_segment: int | Sequence[int] = 1,
    rate_hz: int = 50,
    seed: int = 0,
    origin: tuple[float, float] = (22.50, 114.00),
    geojson: dict[str, Any] | None = None,
    anomaly_margin_m: float = 20.0,
    anomaly_gap_m: float = 15.0,
) -> Network:
    """Segments (from a GeoJSON network, or a synthetic street) and vehicles of mixed classes.

    `potholes_per_segment` and `bumps_per_segment` are a count for every segment or a pattern
    cycled over the segments in order (e.g. (1, 0, 2)); anomalies keep `anomaly_margin_m` from
    a segment's ends and `anomaly_gap_m` from each other, fewer when they do not fit.
    """
    hole_pattern = _pattern(potholes_per_segment)
    bump_pattern = _pattern(bumps_per_segment)
    rng = np.random.default_rng(seed)
    lines = (
        read_polylines(geojson)[:n_segments]
        if geojson is not None
        else synthetic_polylines(n_segments, segment_length_m, origin)
    )
    segments = []
    for i, (sid, coords) in enumerate(lines):
        length = max(60.0, polyline_length_m(coords))
        fits = max(0, int((length - 2 * anomaly_margin_m) // anomaly_gap_m) + 1)
        n_holes = min(hole_pattern[i % len(hole_pattern)], fits)
        anomalies = draw_anomalies(
            length_m=length,
            n_potholes=n_holes,
            n_bumps=min(bump_pattern[i % len(bump_pattern)], fits - n_holes),
            rng=rng,
            margin_m=anomaly_margin_m,
            min_gap_m=anomaly_gap_m,
        )
        profile = road_profile(
            length_m=length,
            iri_m_per_km=TARGET_IRIS_M_PER_KM[i % len(TARGET_IRIS_M_PER_KM)],
            seed=seed * 1000 + i,
            anomalies=anomalies,
        )
        segments.append(Segment(sid, coords, profile))
    devices = [
        SimDevice(
            f"veh-{seed}-{j:04d}",
            device_key(seed, f"veh-{seed}-{j:04d}"),
            VEHICLE_CLASSES[j % len(VEHICLE_CLASSES)],
            float(rng.uniform(8.0, 20.0)),
        )
        for j in range(n_devices)
    ]
    return Network(city, segments, devices, rate_hz, seed)


def _pattern(count: int | Sequence[int]) -> tuple[int, ...]:
    pattern = (count,) if isinstance(count, int) else tuple(int(c) for c in count)
    if not pattern or min(pattern) < 0:
        raise ValueError("anomaly counts must be a non-empty pattern of counts >= 0")
    return pattern


def write_truth(network: Network, path: Path) -> Path:
    """Write the network's ground truth (Network.truth()) as JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(network.truth(), indent=1))
    tmp.replace(path)
    return path
