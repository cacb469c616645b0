"""Labelled acceleration windows of the five surface classes, simulated with known ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from services.roadhealth.analytics.profile import (
    Anomaly,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import VEHICLE_CLASSES, simulate_ride

FloatArray = NDArray[np.float64]
SURFACE_CLASSES = ("asphalt_bumps", "metal_bumps", "potholes", "regular_road", "worn_out_road")
LEAD_IN_M = 15.0


def _draw_surface(
    surface_class: str, rng: np.random.Generator
) -> tuple[float, float, list[Anomaly], float]:
    """Road IRI, speed, anomaly kind-shape and window length for one labelled window."""
    duration_s = float(rng.uniform(2.0, 6.0))
    if surface_class == "worn_out_road":
        return float(rng.uniform(3.5, 8.0)), float(rng.uniform(8, 18)), [], duration_s
    iri = float(rng.uniform(0.7, 2.0))
    if surface_class == "regular_road":
        return iri, float(rng.uniform(8, 22)), [], duration_s
    if surface_class == "potholes":
        shape = Anomaly("pothole", 0.0, rng.uniform(0.3, 1.0), rng.uniform(0.03, 0.08))
        return iri, float(rng.uniform(6, 16)), [shape], duration_s
    if surface_class == "asphalt_bumps":
        shape = Anomaly("bump", 0.0, rng.uniform(2.0, 4.0), rng.uniform(0.05, 0.1))
        return iri, float(rng.uniform(3, 8)), [shape], duration_s
    shape = Anomaly("bump", 0.0, rng.uniform(0.1, 0.25), rng.uniform(0.02, 0.04))
    return iri, float(rng.uniform(6, 14)), [shape], duration_s


def simulate_labelled_window(
    surface_class: str, *, seed: int, rate_hz: float = 50.0, vehicle_class: str = "car"
) -> FloatArray:
    """One window (m/s^2 incl. gravity) of a surface class, any anomaly inside the window."""
    rng = np.random.default_rng(seed)
    iri, speed_mps, shapes, duration_s = _draw_surface(surface_class, rng)
    window_m = speed_mps * duration_s
    length_m = max(30.0, 2 * LEAD_IN_M + window_m)
    offset_m = float(rng.uniform(0.2, 0.8)) * window_m
    anomalies = [Anomaly(a.kind, LEAD_IN_M + offset_m, a.length_m, a.depth_m) for a in shapes]
    profile = generate_road_profile(
        length_m=length_m,
        seed=seed,
        gd_n0_m3=estimate_gd_n0_for_iri(iri),
        anomalies=anomalies,
    )
    ride = simulate_ride(
        profile.elevation_m,
        spacing_m=profile.spacing_m,
        speed_mps=speed_mps,
        rate_hz=rate_hz,
        car=VEHICLE_CLASSES[vehicle_class],
        noise_std_mps2=float(rng.uniform(0.03, 0.15)),
        seed=seed,
    )
    start = int(LEAD_IN_M / speed_mps * rate_hz)
    return ride.acc_z_mps2[start : start + int(duration_s * rate_hz)]


def write_window_folder(root: Path, *, n_per_class: int, seed: int, rate_hz: float = 50.0) -> None:
    """A folder per surface class of CSV windows with an acc_z column (classifier input)."""
    for k, surface_class in enumerate(SURFACE_CLASSES):
        folder = root / surface_class
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            acc = simulate_labelled_window(
                surface_class, seed=seed * 100_003 + k * 10_007 + i, rate_hz=rate_hz
            )
            pd.DataFrame({"acc_z": np.round(acc, 4)}).to_csv(folder / f"{i:04d}.csv", index=False)
