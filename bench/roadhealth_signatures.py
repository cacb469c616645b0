"""Simulated pothole and bump signatures against real phone windows (Gonzalez et al. 2017), and
the cabin response fitted to them.

For each real class folder (potholes; asphalt and metal bumps together; regular road) and for
2 s windows centred on planted anomalies of the simulator (ISO 8608 roads of 1-5.5 m/km, car /
van / bus at 8-20 m/s): the peak deviation from the window's median, how long the signal stays
above 30% of that peak, the Welch spectral centroid, and the share of windows in which the live
detector finds an event. Percentiles 10/50/90. Simulators: the linear quarter-car alone, the
phone ride with the cabin response of the first attempt (3.5 Hz, damping 0.15, gain 1, set by
hand from the real centroid), and the phone ride with the response `fit_cabin` derives from the
real windows (analytics/response.py's CABIN is that fit).

`fit_cabin` searches a fixed grid of natural frequency, damping and gain for the response whose
simulated pothole and bump windows are nearest the real ones: the mean absolute log ratio of
the 10th, 50th and 90th percentiles of peak, duration and centroid, both kinds. It sees only
the real windows' statistics, never a detection or fleet result. As a second, independent check
of realism, the classifiers trained on the real windows (v1, shipped; the version-2 ensemble,
trained here) label each simulated 2 s pothole window: the share they call "potholes" and the
share they give even odds of a discrete anomaly (what the live gate asks).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from services.roadhealth.analytics.dataset import read_window_csv, read_window_folder
from services.roadhealth.analytics.ensemble import train_ensemble
from services.roadhealth.analytics.profile import (
    draw_anomalies,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import get_vehicle, simulate_ride
from services.roadhealth.analytics.response import (
    CABIN,
    WHEELBASE_M,
    CabinResponse,
    plain_elevation,
)
from services.roadhealth.analytics.synthetic import SURFACE_CLASSES
from services.roadhealth.assessment.windows import (
    ANOMALY_CLASSES,
    default_classifier,
    locate_window_events,
)

FloatArray = NDArray[np.float64]
Result = dict[str, Any]
Signature = tuple[float, float, float, bool]
GONZALEZ = Path("/work/shared/data/road/gonzalez2017")
RATE_HZ = 50
REAL_CLASSES = {
    "pothole": ("potholes",),
    "bump": ("asphalt_bumps", "metal_bumps"),
    "plain": ("regular_road",),
}
SIMULATED = 60  # windows per kind
FIRST_ATTEMPT = CabinResponse(natural_hz=3.5, damping_ratio=0.15, gain=1.0)
GRID_HZ = (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
GRID_DAMPING = (0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
GRID_GAIN = (0.5, 0.625, 0.75, 0.875, 1.0, 1.125, 1.25, 1.5)
PERCENTILES = (10, 50, 90)


def signature(window: FloatArray) -> Signature:
    """Peak deviation (m/s^2), time above 30% of it (s), spectral centroid (Hz), detected."""
    dev = window - np.median(window)
    peak = float(np.abs(dev).max())
    above = np.flatnonzero(np.abs(dev) >= 0.3 * peak)
    duration = (above[-1] - above[0] + 1) / RATE_HZ
    freq, power = signal.welch(dev, fs=RATE_HZ, nperseg=min(64, dev.size))
    centroid = float((freq * power).sum() / power.sum())
    detected = bool(locate_window_events(window, rate_hz=RATE_HZ, speed_mps=10.0))
    return peak, duration, centroid, detected


def percentiles(rows: Sequence[Signature]) -> FloatArray:
    """3 x 3: rows peak, duration, centroid; columns the 10th, 50th, 90th percentile."""
    values = np.array([r[:3] for r in rows])
    return np.asarray(np.percentile(values, PERCENTILES, axis=0).T, dtype=np.float64)


def summarise(rows: Sequence[Signature]) -> Result:
    pct = np.round(percentiles(rows), 2).tolist()
    return {
        "windows": len(rows),
        "peak_mps2": pct[0],
        "duration_above_30pct_s": pct[1],
        "centroid_hz": pct[2],
        "detected_share": round(float(np.mean([r[3] for r in rows])), 2),
    }


@dataclass(frozen=True)
class Pass:
    """One simulated pass over a planted anomaly: the ride over plain road, the linear
    quarter-car's response to the anomaly alone, the rear axle's lag and the window's centre."""

    plain: FloatArray
    shock: FloatArray
    lag: int
    centre: int

    def window(self, cabin: CabinResponse | None) -> FloatArray:
        acc = self.plain + (
            self.shock
            if cabin is None
            else cabin.filter(self.shock, rate_hz=RATE_HZ, lag_samples=self.lag)
        )
        return acc[self.centre - RATE_HZ : self.centre + RATE_HZ]


@lru_cache(maxsize=3)
def simulated_passes(kind: str) -> tuple[Pass, ...]:
    """Passes centred on one planted anomaly each (or on plain road), the same draws for every
    cabin response."""
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
        car = get_vehicle(("car", "van", "bus")[k % 3])
        rides = [
            simulate_ride(
                elevation, spacing_m=profile.spacing_m, speed_mps=speed, car=car, seed=k
            ).acc_z_mps2
            for elevation in (plain_elevation(profile), profile.elevation_m)
        ]
        centre = round((anomalies[0].position_m if anomalies else 50.0) / speed * RATE_HZ)
        lag = round(WHEELBASE_M.get(car.name, 2.7) / speed * RATE_HZ)
        out.append(Pass(rides[0], rides[1] - rides[0], lag, centre))
    return tuple(out)


def real_windows(kind: str) -> list[FloatArray]:
    return [
        read_window_csv(f) for d in REAL_CLASSES[kind] for f in sorted((GONZALEZ / d).glob("*.csv"))
    ]


def _shape(window: FloatArray) -> Signature:
    """signature() without the detector, for the fit's inner loop."""
    dev = window - np.median(window)
    peak = float(np.abs(dev).max())
    above = np.flatnonzero(np.abs(dev) >= 0.3 * peak)
    freq, power = signal.welch(dev, fs=RATE_HZ, nperseg=min(64, dev.size))
    return (
        peak,
        (above[-1] - above[0] + 1) / RATE_HZ,
        float((freq * power).sum() / power.sum()),
        False,
    )


def distance(cabin: CabinResponse | None, real: dict[str, FloatArray]) -> float:
    """Mean absolute log ratio of simulated to real percentiles, potholes and bumps."""
    gaps = [
        np.abs(
            np.log(percentiles([_shape(p.window(cabin)) for p in simulated_passes(kind)]) / target)
        )
        for kind, target in real.items()
    ]
    return float(np.mean(gaps))


def fit_cabin() -> tuple[CabinResponse, float]:
    """The grid's cabin response nearest the real pothole and bump windows, and its distance."""
    real = {k: percentiles([_shape(w) for w in real_windows(k)]) for k in ("pothole", "bump")}
    scored = [
        (distance(c, real), c)
        for c in (
            CabinResponse(natural_hz=hz, damping_ratio=zeta, gain=gain)
            for hz, zeta, gain in itertools.product(GRID_HZ, GRID_DAMPING, GRID_GAIN)
        )
    ]
    best, cabin = min(scored, key=lambda s: s[0])
    return cabin, best


def run() -> list[Result]:
    if not GONZALEZ.is_dir():
        return []
    fitted, fit_distance = fit_cabin()
    real = {k: percentiles([_shape(w) for w in real_windows(k)]) for k in ("pothole", "bump")}
    out: list[Result] = [
        {
            "name": "cabin_response_fit",
            "fitted": {
                "natural_hz": fitted.natural_hz,
                "damping_ratio": fitted.damping_ratio,
                "gain": fitted.gain,
                "rear_axle_gain": fitted.rear_axle_gain,
            },
            "shipped_matches_fit": fitted == CABIN,
            "distance_mean_abs_log_ratio": {
                "quarter_car": round(distance(None, real), 3),
                "first_attempt": round(distance(FIRST_ATTEMPT, real), 3),
                "fitted": round(fit_distance, 3),
            },
        }
    ]
    simulators = {"quarter_car": None, "phone_first_attempt": FIRST_ATTEMPT, "phone_fitted": fitted}
    out.append(classifier_labels(simulators))
    for kind in REAL_CLASSES:
        row: Result = {"name": "anomaly_signature", "kind": kind}
        row["real_gonzalez2017"] = summarise([signature(w) for w in real_windows(kind)])
        for name, cabin in simulators.items():
            windows = [p.window(cabin) for p in simulated_passes(kind)]
            row[f"simulated_{name}"] = summarise([signature(w) for w in windows])
        out.append(row)
    return out


def classifier_labels(simulators: dict[str, CabinResponse | None]) -> Result:
    """How the classifiers trained on the real windows label each simulator's pothole windows."""
    windows, labels = read_window_folder(GONZALEZ, known_classes=SURFACE_CLASSES)
    models = {"v1": default_classifier(), "v2": train_ensemble(windows, labels, rate_hz=RATE_HZ)}
    row: Result = {"name": "simulated_potholes_by_real_classifiers"}
    for name, cabin in simulators.items():
        pieces = [p.window(cabin) for p in simulated_passes("pothole")]
        for gate, model in models.items():
            if model is None:
                continue
            prob = model.predict_proba(pieces, rate_hz=float(RATE_HZ))
            anomalous = [i for i, c in enumerate(model.classes) if c in ANOMALY_CLASSES]
            hole = model.classes.index("potholes")
            row[f"{name}_{gate}"] = {
                "labelled_potholes": round(float(np.mean(prob.argmax(axis=1) == hole)), 2),
                "p_anomaly_at_least_half": round(
                    float(np.mean(prob[:, anomalous].sum(axis=1) >= 0.5)), 2
                ),
            }
    return row
