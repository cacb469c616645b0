"""Planned passes: chosen vehicles drive chosen road-health segments, and their batches are
anchored as the gateway anchors them.

Where `Fleet` drives a `Network`'s devices round and round for MQTT, `PassFleet` gives each
segment of a road-health `SegmentIndex` a surface (`plan`) and returns the signed windows of
one pass (`drive`), optionally in reverse; `ingest_body` anchors them and wraps them as the
gateway forwards them (POST /roadhealth/v1/ingest). Tests and benches score the service against
the planned truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chain.crypto import SigningKey
from iot_gateway.simulator.roads import jittered, ride_windows, road_profile
from services.common.ledger import LedgerPort, call
from services.roadhealth.analytics.profile import Anomaly, RoadProfile, draw_anomalies
from services.roadhealth.analytics.quartercar import get_vehicle
from services.roadhealth.analytics.response import CABIN, CabinResponse, simulate_phone_ride
from services.roadhealth.network.matching import SegmentIndex
from services.roadhealth.wire import batch_root, message_hash, sign_payload


@dataclass(frozen=True)
class Vehicle:
    device: str
    key: SigningKey
    vehicle_class: str


@dataclass
class SegmentTruth:
    segment: str
    profile: RoadProfile

    @property
    def iri(self) -> float:
        return self.profile.iri_m_per_km

    @property
    def potholes_m(self) -> list[float]:
        return [a.position_m for a in self.profile.anomalies if a.kind == "pothole"]


@dataclass
class PassFleet:
    """Vehicles driven pass by pass over planned segments of a road-health index."""

    index: SegmentIndex
    truth: dict[str, SegmentTruth] = field(default_factory=dict)
    next_seq: dict[str, int] = field(default_factory=dict)
    # Potholes and bumps as a cabin-mounted phone records them (analytics/response.py); None:
    # the linear quarter-car's own spike, which real phones do not record
    cabin: CabinResponse | None = CABIN

    def plan(
        self,
        segment: str,
        *,
        base_iri: float,
        seed: int,
        potholes: int = 0,
        bumps: int = 0,
    ) -> SegmentTruth:
        """Give a segment a road surface: roughness near base_iri plus planted anomalies."""
        length = self.index.lengths_m[segment]
        rng = np.random.default_rng(seed)
        anomalies: tuple[Anomaly, ...] = ()
        if potholes or bumps:
            anomalies = draw_anomalies(
                length_m=length,
                n_potholes=potholes,
                n_bumps=bumps,
                rng=rng,
                margin_m=30.0,
                min_gap_m=40.0,
            )
        profile = road_profile(
            length_m=length, iri_m_per_km=base_iri, seed=seed, anomalies=anomalies
        )
        self.truth[segment] = SegmentTruth(segment, profile)
        return self.truth[segment]

    def drive(
        self,
        vehicle: Vehicle,
        segment: str,
        *,
        speed_mps: float,
        t0: float,
        reverse: bool = False,
        rate_hz: int = 50,
        window_s: float = 4.0,
        gps_jitter_m: float = 2.0,
        noise_std_mps2: float = 0.08,
        seed: int = 0,
    ) -> list[dict[str, Any]]:
        """Signed payloads of one pass over a planned segment, whole windows back to back."""
        truth = self.truth[segment]
        ride = simulate_phone_ride(
            truth.profile,
            speed_mps=speed_mps,
            rate_hz=rate_hz,
            car=get_vehicle(vehicle.vehicle_class),
            noise_std_mps2=noise_std_mps2,
            seed=seed,
            reverse=reverse,
            cabin=self.cabin,
        )
        rng = np.random.default_rng(seed + 7)
        length = self.index.lengths_m[segment]
        per_window = int(window_s * rate_hz)
        payloads = []
        for start, acc_z in ride_windows(ride, per_window=per_window, min_samples=per_window):
            along = float(ride.distance_m[start])
            chainage = length - along if reverse else along
            lat, lon = self.index.position_at(segment, chainage)
            lat, lon = jittered(lat, lon, gps_jitter_m, rng)
            seq = self.next_seq.get(vehicle.device, 0)
            self.next_seq[vehicle.device] = seq + 1
            payload = {
                "device": vehicle.device,
                "seq": seq,
                "t0": round(t0 + float(ride.t_s[start]), 3),
                "rate_hz": rate_hz,
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "speed_mps": round(speed_mps, 3),
                "acc_z": acc_z,
            }
            payloads.append(sign_payload(vehicle.key, payload))
        return payloads


def topic(payload: dict[str, Any], *, city: str = "smartcity", segment: str = "unknown") -> str:
    return f"city/{city}/road/{segment}/sensor/{payload['device']}/telemetry"


def build_batch(payloads: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The batch root and its messages (leaf order = payload order), ready to anchor."""
    hashes = [message_hash(p) for p in payloads]
    messages = [
        {"topic": topic(p), "payload": p, "leaf_index": i, "hash": h}
        for i, (p, h) in enumerate(zip(payloads, hashes, strict=True))
    ]
    return batch_root(hashes), messages


def anchor_batch(ledger: LedgerPort, key: SigningKey, root: str, count: int) -> str:
    """Anchor a root as the gateway does; returns the committed anchor transaction's hash."""
    receipt = call(
        ledger,
        key,
        "anchors",
        "anchor",
        {"root": root, "count": count, "label": "iot-gateway", "metadata": {}},
    )
    if receipt["status"] != "ok":
        raise RuntimeError(f"anchor failed: {receipt['error']}")
    return str(receipt["tx"])


def ingest_body(
    ledger: LedgerPort, key: SigningKey, payloads: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Build, anchor and wrap a batch as POST /roadhealth/v1/ingest expects it."""
    root, messages = build_batch(payloads)
    tx = anchor_batch(ledger, key, root, len(messages))
    return {"batch": {"root": root, "anchor_tx": tx, "count": len(messages)}, "messages": messages}
