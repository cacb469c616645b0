"""Classic threshold detectors (Mednis et al. 2011; Eriksson et al. 2008) and event scoring."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.quartercar import GRAVITY_MPS2

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def detect_z_thresh(acc_z_mps2: FloatArray, *, threshold_mps2: float = 4.0) -> BoolArray:
    """Z-THRESH: samples whose deviation from gravity exceeds a threshold."""
    return np.asarray(np.abs(acc_z_mps2 - GRAVITY_MPS2) > threshold_mps2)


def detect_z_diff(acc_z_mps2: FloatArray, *, threshold_mps2: float = 4.0) -> BoolArray:
    """Z-DIFF: samples that differ from the previous one by more than a threshold."""
    jump = np.abs(np.diff(acc_z_mps2, prepend=acc_z_mps2[:1]))
    return np.asarray(jump > threshold_mps2)


def detect_stdev(
    acc_z_mps2: FloatArray, *, rate_hz: float, threshold_mps2: float = 1.5, window_s: float = 0.4
) -> BoolArray:
    """STDEV(Z): samples centring a short window whose standard deviation exceeds a threshold."""
    width = max(2, round(window_s * rate_hz))
    kernel = np.ones(width) / width
    mean = np.convolve(acc_z_mps2, kernel, mode="same")
    mean_sq = np.convolve(acc_z_mps2**2, kernel, mode="same")
    std = np.sqrt(np.maximum(mean_sq - mean**2, 0.0))
    return np.asarray(std > threshold_mps2)


def detect_g_zero(acc_z_mps2: FloatArray, *, threshold_mps2: float = 4.0) -> BoolArray:
    """G-ZERO: near free fall, the body's measured vertical acceleration drops towards 0 g."""
    return np.asarray(acc_z_mps2 < threshold_mps2)


def passes_speed_filter(
    peak_deviation_mps2: float, speed_mps: float, *, ratio_s_inv: float = 0.1
) -> bool:
    """Pothole Patrol's speed-vs-z filter: at speed, a real hole shakes more than ratio * speed."""
    return peak_deviation_mps2 >= ratio_s_inv * speed_mps


DETECTORS: dict[str, Callable[[FloatArray, float], BoolArray]] = {
    "z_thresh": lambda acc, _rate: detect_z_thresh(acc),
    "z_diff": lambda acc, _rate: detect_z_diff(acc),
    "stdev": lambda acc, rate: detect_stdev(acc, rate_hz=rate),
    "g_zero": lambda acc, _rate: detect_g_zero(acc),
}


def detect_window(acc_z_mps2: FloatArray, *, rate_hz: float) -> dict[str, bool]:
    """Which classic detectors fire anywhere in a window."""
    acc = np.asarray(acc_z_mps2, dtype=np.float64)
    return {name: bool(fn(acc, rate_hz).any()) for name, fn in DETECTORS.items()}


def locate_events(
    flags: BoolArray, *, distance_m: FloatArray, merge_within_m: float = 3.0
) -> list[float]:
    """Positions of detected events: flagged samples closer than merge_within_m form one event."""
    hits = distance_m[np.flatnonzero(flags)]
    events: list[list[float]] = []
    for pos in hits:
        if events and pos - events[-1][-1] <= merge_within_m:
            events[-1].append(float(pos))
        else:
            events.append([float(pos)])
    return [0.5 * (e[0] + e[-1]) for e in events]


@dataclass(frozen=True)
class DetectionScore:
    """Event-level precision and recall against planted positions."""

    precision: float
    recall: float
    true_positives: int
    false_alarms: int
    detections: int
    planted: int


def score_events(
    detected_m: Sequence[float], planted_m: Sequence[float], *, tolerance_m: float = 5.0
) -> DetectionScore:
    """Match each planted position to at most one detection within tolerance_m."""
    used: set[int] = set()
    for truth in planted_m:
        near = [i for i, d in enumerate(detected_m) if abs(d - truth) <= tolerance_m]
        free = [i for i in near if i not in used]
        if free:
            used.add(min(free, key=lambda i: abs(detected_m[i] - truth)))
    # Extra detections of an already found anomaly are not false alarms of another.
    false_alarms = sum(
        1
        for i, d in enumerate(detected_m)
        if i not in used and all(abs(d - t) > tolerance_m for t in planted_m)
    )
    tp = len(used)
    precision = tp / (tp + false_alarms) if tp + false_alarms else 1.0
    recall = tp / len(planted_m) if planted_m else 1.0
    return DetectionScore(precision, recall, tp, false_alarms, len(detected_m), len(planted_m))
