"""Road sensors on simulated vehicles: known roads in, signed telemetry out, ground truth kept.

Each segment is an ISO 8608 profile (roughness set by a target IRI) with potholes and bumps at
known places; each vehicle is a quarter-car of its class (services.roadhealth.analytics) driven
over its route at its own speed, so the body acceleration it reports is what a body-mounted
sensor would record (with `cabin`, potholes and bumps shaped as phones on real roads record
them, services/roadhealth/analytics/response.py), plus sensor noise; positions carry GPS jitter.
The truth (each segment's IRI and class, each anomaly's position) can be written out for
scoring.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from chain.crypto import SigningKey
from iot_gateway.wire import (
    ENCODINGS,
    Encoding,
    canonical_json,
    encode_cbor,
    sign_payload,
    telemetry_topic,
)
from services.roadhealth.analytics.iri import classify_condition, compute_iri
from services.roadhealth.analytics.profile import (
    RoadProfile,
    draw_anomalies,
    estimate_gd_n0_for_iri,
    generate_iso8608_elevation,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import get_vehicle
from services.roadhealth.analytics.response import CabinResponse, simulate_phone_ride

EARTH_RADIUS_M = 6_371_000.0
VEHICLE_CLASSES = ("car", "van", "bus")
# Target roughness of the demo network: good, fair and poor roads
TARGET_IRIS_M_PER_KM = (1.0, 1.3, 2.0, 2.4, 3.2, 4.5)
BAD_KINDS = ("bad_signature", "unknown_device", "replayed_seq", "malformed")
MIN_WINDOW_SAMPLES = 16  # the wire format's minimum (docs/telemetry.md)


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
    # Potholes and bumps as a cabin-mounted phone records them (None: the quarter-car's spike)
    cabin: CabinResponse | None = None

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
        target = TARGET_IRIS_M_PER_KM[i % len(TARGET_IRIS_M_PER_KM)]
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
        profile = generate_road_profile(
            length_m=length,
            seed=seed * 1000 + i,
            gd_n0_m3=estimate_gd_n0_for_iri(target),
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


@dataclass(frozen=True)
class Window:
    """One unsigned telemetry window on its topic."""

    topic: str
    payload: dict[str, Any]


@dataclass
class DeviceStream:
    """A device driving its route over and over, one window at a time."""

    network: Network
    device: SimDevice
    window_s: float = 1.0
    noise_std_mps2: float = 0.05
    gps_jitter_m: float = 3.0
    seq: int = 0
    segments_driven: int = 0  # segments this device has driven to their end
    _windows: Iterator[Window] | None = field(default=None, repr=False)

    def next_window(self, t0: float) -> Window:
        if self._windows is None:
            self._windows = self._drive()
        window = next(self._windows)
        self.seq += 1
        return Window(window.topic, {**window.payload, "seq": self.seq, "t0": round(t0, 3)})

    def _drive(self) -> Iterator[Window]:
        device, network = self.device, self.network
        digest = hashlib.sha256(f"{network.seed}:{device.id}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        start = int(rng.integers(len(network.segments)))
        lap = 0
        while True:
            for k in range(len(network.segments)):
                segment = network.segments[(start + k) % len(network.segments)]
                yield from self._drive_segment(segment, rng, lap)
                self.segments_driven += 1
            lap += 1

    def _drive_segment(
        self, segment: Segment, rng: np.random.Generator, lap: int
    ) -> Iterator[Window]:
        device, rate = self.device, self.network.rate_hz
        speed = float(device.speed_mps * rng.uniform(0.9, 1.1))
        ride = simulate_phone_ride(
            segment.profile,
            cabin=self.network.cabin,
            speed_mps=speed,
            rate_hz=float(rate),
            car=get_vehicle(device.vehicle_class),
            noise_std_mps2=self.noise_std_mps2,
            seed=int(rng.integers(2**31)) + lap,
        )
        n = max(1, int(self.window_s * rate))
        topic = telemetry_topic(self.network.city, segment.id, device.id)
        size = ride.acc_z_mps2.size
        # Windows back to back; the segment's last stretch goes out as a shorter window (the
        # wire takes 16 samples and up) rather than being dropped, so its potholes are seen too
        starts = [s for s in range(0, size, n) if min(n, size - s) >= MIN_WINDOW_SAMPLES]
        for start in starts:
            # The position at t0, the window's first sample (docs/telemetry.md)
            lat, lon = segment.position(float(ride.distance_m[start]))
            jitter = rng.normal(0.0, self.gps_jitter_m, size=2) / EARTH_RADIUS_M
            yield Window(
                topic,
                {
                    "device": device.id,
                    "rate_hz": rate,
                    "lat": round(lat + math.degrees(jitter[0]), 7),
                    "lon": round(lon + math.degrees(jitter[1]) / math.cos(math.radians(lat)), 7),
                    "speed_mps": round(speed, 3),
                    "acc_z": [round(float(v), 4) for v in ride.acc_z_mps2[start : start + n]],
                },
            )


@dataclass(frozen=True)
class Outgoing:
    """A message ready to publish; `bad` names the fault planted in it, if any."""

    topic: str
    payload: bytes
    device: str
    seq: int | None
    bad: str | None = None


def encode_payload(payload: dict[str, Any], encoding: Encoding) -> bytes:
    """A signed payload's bytes on the wire: canonical JSON, or CBOR."""
    return encode_cbor(payload) if encoding == "cbor" else canonical_json(payload)


def _on_topic(topic: str, encoding: Encoding) -> str:
    return topic if encoding == "json" else f"{topic}/{encoding}"


def make_bad(
    kind: str,
    good: Outgoing,
    signed: dict[str, Any],
    network: Network,
    rng: np.random.Generator,
    encoding: Encoding = "json",
) -> Outgoing:
    """A faulty variant of a good message: the gateway must dead-letter it with this reason."""
    if kind == "bad_signature":
        tampered = {**signed, "speed_mps": round(signed["speed_mps"] + 1.0, 3)}
        return Outgoing(good.topic, encode_payload(tampered, encoding), good.device, None, kind)
    if kind == "unknown_device":
        stranger = f"ghost-{network.seed}-{int(rng.integers(1000))}"
        key = device_key(network.seed + 1, stranger)
        body = sign_payload(key, {**signed, "device": stranger})
        topic = good.topic.replace(f"/sensor/{good.device}/", f"/sensor/{stranger}/")
        return Outgoing(topic, encode_payload(body, encoding), stranger, None, kind)
    if kind == "malformed":
        # Cut short: neither JSON nor CBOR parses it
        cut = encode_payload(signed, encoding)[:24]
        return Outgoing(good.topic, cut, good.device, None, kind)
    raise ValueError(f"unknown bad kind {kind!r}; use one of {', '.join(BAD_KINDS)}")


class Fleet:
    """Every device's stream, interleaved, with a share of bad messages when asked."""

    def __init__(
        self,
        network: Network,
        *,
        bad_share: float = 0.0,
        bad_kinds: tuple[str, ...] = BAD_KINDS,
        seed: int = 0,
        window_s: float = 1.0,
        gps_jitter_m: float = 3.0,
        noise_std_mps2: float = 0.05,
        encoding: Encoding = "json",
    ) -> None:
        if not 0.0 <= bad_share <= 1.0:
            raise ValueError("bad_share must lie in 0..1")
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
        self.encoding = encoding
        for kind in bad_kinds:
            if kind not in BAD_KINDS:
                raise ValueError(f"unknown bad kind {kind!r}; use one of {', '.join(BAD_KINDS)}")
        self.network = network
        self.streams = [
            DeviceStream(
                network,
                d,
                window_s=window_s,
                noise_std_mps2=noise_std_mps2,
                gps_jitter_m=gps_jitter_m,
            )
            for d in network.devices
        ]
        self.keys = {d.id: d.key for d in network.devices}
        self.bad_share = bad_share
        self.bad_kinds = bad_kinds
        self.rng = np.random.default_rng(seed)
        self.turn = 0
        self.sent_good: list[tuple[str, int]] = []
        self.sent_bad: dict[str, int] = {}

    def next_message(self, now_s: float) -> Outgoing:
        stream = self.streams[self.turn % len(self.streams)]
        self.turn += 1
        window = stream.next_window(now_s)
        signed = sign_payload(self.keys[stream.device.id], window.payload)
        good = Outgoing(
            _on_topic(window.topic, self.encoding),
            encode_payload(signed, self.encoding),
            stream.device.id,
            stream.seq,
        )
        if self.bad_share and self.rng.random() < self.bad_share:
            kind = str(self.rng.choice(self.bad_kinds))
            bad = self._bad(kind, good, signed, stream)
            if bad is not None:
                stream.seq -= 1  # a bad message does not use up a sequence number
                self.sent_bad[kind] = self.sent_bad.get(kind, 0) + 1
                return bad
        self.sent_good.append((good.device, stream.seq))
        return good

    def _bad(
        self, kind: str, good: Outgoing, signed: dict[str, Any], stream: DeviceStream
    ) -> Outgoing | None:
        if kind != "replayed_seq":
            return make_bad(kind, good, signed, self.network, self.rng, self.encoding)
        if stream.seq < 2:
            return None  # nothing accepted yet to replay
        # A fresh window signed under a sequence number the device already used
        old_seq = int(self.rng.integers(1, stream.seq))
        body = sign_payload(
            self.keys[stream.device.id],
            {**signed, "seq": old_seq, "speed_mps": round(signed["speed_mps"] + 0.5, 3)},
        )
        payload = encode_payload(body, self.encoding)
        return Outgoing(good.topic, payload, good.device, old_seq, "replayed_seq")


__all__ = [
    "BAD_KINDS",
    "DeviceStream",
    "Fleet",
    "Network",
    "Outgoing",
    "Segment",
    "SimDevice",
    "Window",
    "build_network",
    "device_key",
    "encode_payload",
    "make_bad",
    "write_truth",
]
