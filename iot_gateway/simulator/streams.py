"""One simulated device driving its route over and over, one unsigned window at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iot_gateway.simulator.network import Network, SimDevice
from iot_gateway.simulator.roads import Segment, jittered, ride_windows
from iot_gateway.wire import telemetry_topic
from services.roadhealth.analytics.quartercar import get_vehicle
from services.roadhealth.analytics.response import simulate_phone_ride

MIN_WINDOW_SAMPLES = 16  # the wire format's minimum (docs/telemetry.md)


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
        topic = telemetry_topic(self.network.city, segment.id, device.id)
        # Windows back to back; the segment's last stretch goes out as a shorter window (the
        # wire takes 16 samples and up) rather than being dropped, so its potholes are seen too
        per_window = max(1, int(self.window_s * rate))
        for start, acc_z in ride_windows(
            ride, per_window=per_window, min_samples=MIN_WINDOW_SAMPLES
        ):
            # The position at t0, the window's first sample (docs/telemetry.md)
            true_lat, true_lon = segment.position(float(ride.distance_m[start]))
            lat, lon = jittered(true_lat, true_lon, self.gps_jitter_m, rng)
            yield Window(
                topic,
                {
                    "device": device.id,
                    "rate_hz": rate,
                    "lat": round(lat, 7),
                    "lon": round(lon, 7),
                    "speed_mps": round(speed, 3),
                    "acc_z": acc_z,
                },
            )
