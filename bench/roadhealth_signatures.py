"""Simulated pothole and bump signatures against real phone windows (Gonzalez et al. 2017).

For each real class folder (potholes; asphalt and metal bumps together; regular road) and for
2 s windows centred on planted anomalies of the simulator (ISO 8608 roads of 1-5.5 m/km, car /
van / bus at 8-20 m/s), before (the linear quarter-car alone) and after (analytics/response.py:
the cabin's response to discrete shocks): the peak deviation from the window's median, how long
the signal stays above 30% of that peak, the Welch spectral centroid, and the share of windows
in which the live 3 m/s^2 detector finds an event. Percentiles 10/50/90.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from services.roadhealth.analysis import locate_window_events
from services.roadhealth.analytics.dataset import read_window_csv
from services.roadhealth.analytics.profile import (
    draw_anomalies,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import Ride, get_vehicle, simulate_ride
from services.roadhealth.analytics.response import simulate_phone_ride

FloatArray = NDArray[np.float64]
Result = dict[str, Any]
GONZALEZ = Path("/work/shared/data/road/gonzalez2017")
RATE_HZ = 50
REAL_CLASSES = {
    "pothole": ("potholes",),
    "bump": ("asphalt_bumps", "metal_bumps"),
    "plain": ("regular_road",),
}
SIMULATED = 60  # windows per kind and simulator


def signature(window: FloatArray) -> tuple[float, float, float, bool]:
    """Peak deviation (m/s^2), time above 30% of it (s), spectral centroid (Hz), detected."""
    dev = window - np.median(window)
    peak = float(np.abs(dev).max())
    above = np.flatnonzero(np.abs(dev) >= 0.3 * peak)
    duration = (above[-1] - above[0] + 1) / RATE_HZ
    freq, power = signal.welch(dev, fs=RATE_HZ, nperseg=min(64, dev.size))
    centroid = float((freq * power).sum() / power.sum())
    detected = bool(locate_window_events(window, rate_hz=RATE_HZ, speed_mps=10.0))
    return peak, duration, centroid, detected


def summarise(rows: list[tuple[float, float, float, bool]]) -> Result:
    values = np.array([r[:3] for r in rows])

    def pct(k: int) -> list[float]:
        return [round(float(v), 2) for v in np.percentile(values[:, k], [10, 50, 90])]

    return {
        "windows": len(rows),
        "peak_mps2": pct(0),
        "duration_above_30pct_s": pct(1),
        "centroid_hz": pct(2),
        "detected_share": round(float(np.mean([r[3] for r in rows])), 2),
    }


def simulated_windows(kind: str, ride_of: Callable[..., Ride]) -> list[FloatArray]:
    """2 s windows centred on one planted anomaly each (or on plain road), same draws for both
    simulators."""
    rng = np.random.default_rng(2017)
    out = []
    for k in range(SIMULATED):
        holes, bumps = (1, 0) if kind == "pothole" else (0, 1) if kind == "bump" else (0, 0)
        anomalies = draw_anomalies(
            length_m=100, n_potholes=holes, n_bumps=bumps, rng=rng, margin_m=45, min_gap_m=10
        )
        iri, speed = rng.uniform(1.0, 5.5), rng.uniform(8.0, 20.0)
        profile = generate_road_profile(
            length_m=100, seed=k, gd_n0_m3=estimate_gd_n0_for_iri(iri), anomalies=anomalies
        )
        ride = ride_of(profile, speed, get_vehicle(("car", "van", "bus")[k % 3]), k)
        centre = round((anomalies[0].position_m if anomalies else 50.0) / speed * RATE_HZ)
        out.append(ride.acc_z_mps2[centre - RATE_HZ : centre + RATE_HZ])
    return out


def _quarter_car(profile: Any, speed: float, car: Any, seed: int) -> Ride:
    return simulate_ride(
        profile.elevation_m, spacing_m=profile.spacing_m, speed_mps=speed, car=car, seed=seed
    )


def _phone(profile: Any, speed: float, car: Any, seed: int) -> Ride:
    return simulate_phone_ride(
        profile, speed_mps=speed, rate_hz=RATE_HZ, car=car, noise_std_mps2=0.05, seed=seed
    )


def run() -> list[Result]:
    out = []
    for kind, folders in REAL_CLASSES.items():
        row: Result = {"name": "anomaly_signature", "kind": kind}
        if GONZALEZ.is_dir():
            real = [
                read_window_csv(f) for d in folders for f in sorted((GONZALEZ / d).glob("*.csv"))
            ]
            row["real_gonzalez2017"] = summarise([signature(w) for w in real])
        for name, ride_of in (("quarter_car", _quarter_car), ("phone_ride", _phone)):
            row[f"simulated_{name}"] = summarise(
                [signature(w) for w in simulated_windows(kind, ride_of)]
            )
        out.append(row)
    return out
