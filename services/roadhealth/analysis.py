"""Per-window and per-segment analytics on top of the analytics library.

A window gets an IRI estimate (per-vehicle-class calibration) and its located events (classic
Z-THRESH / Z-DIFF detectors; a pothole's first excursion is downwards as the wheel drops, a
bump's is upwards). The learned surface classifier then judges the two seconds around each
event: a pothole is reported only when the detector located a downward event and the
classifier gives the surroundings at least even odds of holding a discrete anomaly (pothole,
asphalt or metal bump) rather than plain rough or smooth road. Its label, that probability and
the model's id are kept with the event. A segment's IRI is the mean of its windows' log
estimates, with a 90% interval that combines the calibration's residual, the spread between
windows and a floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.anomaly import ClassifierError
from services.roadhealth.analytics.detectors import detect_z_diff, detect_z_thresh, locate_events
from services.roadhealth.analytics.ensemble import load_any_classifier
from services.roadhealth.analytics.roughness import (
    CalibrationError,
    IriCalibration,
    estimate_iri,
    load_default_calibration,
)

FloatArray = NDArray[np.float64]
Z_90 = 1.6449
EVENT_THRESHOLD_MPS2 = 3.0
EVENT_HALF_SPAN_S = 0.4
MIN_SPEED_FOR_IRI_MPS = 4.0
MIN_SPEED_FOR_EVENTS_MPS = 2.0
SYSTEMATIC_LOG_STD = 0.05  # calibration bias the windows of one segment share
DEFAULT_CLASSIFIER = (
    Path(__file__).parent / "analytics" / "models" / "surface_gonzalez2017_50hz.json"
)
ANOMALY_CLASSES = frozenset({"asphalt_bumps", "metal_bumps", "potholes"})
EVENT_CONTEXT_S = 1.0  # each side of an event: about the length of a labelled pothole window
MIN_ANOMALY_PROBABILITY = 0.5


@dataclass(frozen=True)
class Thresholds:
    """Condition classes by IRI (m/km): good below `good_below`, poor above `poor_above`."""

    good_below: float = 1.5
    poor_above: float = 2.68

    def classify(self, iri_m_per_km: float) -> str:
        if iri_m_per_km < self.good_below:
            return "good"
        return "fair" if iri_m_per_km <= self.poor_above else "poor"


@dataclass(frozen=True)
class Event:
    """A located anomaly in a window: metres from the window's start, kind and peak size, and
    the classifier's view of its surroundings (None without a classifier)."""

    offset_m: float
    kind: str  # pothole | bump
    peak_mps2: float
    surface: str | None = None  # the classifier's most likely class
    p_anomaly: float | None = None  # its probability of a pothole or bump class
    model: str | None = None  # the classifier's model id

    @property
    def reported(self) -> bool:
        """A pothole report: a downward event the classifier does not call plain road."""
        if self.kind != "pothole":
            return False
        return self.p_anomaly is None or self.p_anomaly >= MIN_ANOMALY_PROBABILITY

    def as_json(self) -> dict[str, object]:
        return {
            "offset_m": round(self.offset_m, 2),
            "kind": self.kind,
            "peak_mps2": round(self.peak_mps2, 2),
            "surface": self.surface,
            "p_anomaly": None if self.p_anomaly is None else round(self.p_anomaly, 3),
            "model": self.model,
            "reported": self.reported,
        }


@dataclass(frozen=True)
class WindowAnalysis:
    iri: float | None
    iri_log_std: float | None
    events: tuple[Event, ...]


class LiveClassifier(Protocol):
    """What the live gate needs of a surface classifier (model format version 1 or 2)."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def model_id(self) -> str: ...

    def predict_proba(
        self, windows: Sequence[FloatArray], *, rate_hz: float | None = None
    ) -> FloatArray: ...


@lru_cache(maxsize=1)
def default_classifier() -> LiveClassifier | None:
    """The shipped surface classifier (trained on Gonzalez et al. 2017), None if unreadable."""
    try:
        return load_any_classifier(DEFAULT_CLASSIFIER)
    except ClassifierError:
        return None


@lru_cache(maxsize=64)
def _calibration(vehicle_class: str, rate_hz: float) -> IriCalibration | None:
    try:
        return load_default_calibration(vehicle_class, rate_hz)
    except CalibrationError:
        return None


def analyse_window(
    acc_z: Sequence[float],
    *,
    rate_hz: int,
    speed_mps: float,
    vehicle_class: str,
    classifier: LiveClassifier | None = None,
) -> WindowAnalysis:
    """IRI estimate (when a calibration and enough speed exist) and located events, judged by
    `classifier` (the shipped one when not given)."""
    acc = np.asarray(acc_z, dtype=np.float64)
    iri, log_std = estimate_window_iri(
        acc, rate_hz=rate_hz, speed_mps=speed_mps, vehicle_class=vehicle_class
    )
    events = locate_window_events(acc, rate_hz=rate_hz, speed_mps=speed_mps)
    judge = classifier or default_classifier()
    if judge is not None and events:
        events = judge_events(judge, acc, events, rate_hz=rate_hz, speed_mps=speed_mps)
    return WindowAnalysis(iri, log_std, events)


def estimate_window_iri(
    acc: FloatArray, *, rate_hz: int, speed_mps: float, vehicle_class: str
) -> tuple[float | None, float | None]:
    """A window's IRI and its calibration's log residual, or (None, None) when the vehicle
    class and rate have no calibration, the speed is too low or the window too short."""
    calibration = _calibration(vehicle_class, float(rate_hz))
    if calibration is None or speed_mps < MIN_SPEED_FOR_IRI_MPS:
        return None, None
    try:
        estimate = estimate_iri(
            acc, speed_mps=speed_mps, rate_hz=float(rate_hz), calibration=calibration
        )
    except CalibrationError:
        return None, None  # too short a window: events only
    return estimate.iri_m_per_km, calibration.residual_std_log


def judge_events(
    classifier: LiveClassifier,
    acc: FloatArray,
    events: tuple[Event, ...],
    *,
    rate_hz: int,
    speed_mps: float,
) -> tuple[Event, ...]:
    """Each event with the classifier's label and anomaly probability of its surroundings."""
    half = round(EVENT_CONTEXT_S * rate_hz)
    pieces = []
    for event in events:
        centre = round(event.offset_m / speed_mps * rate_hz)
        start = max(0, min(centre - half, acc.size - 2 * half))
        pieces.append(acc[start : start + 2 * half])
    prob = classifier.predict_proba(pieces, rate_hz=float(rate_hz))
    anomalous = [i for i, c in enumerate(classifier.classes) if c in ANOMALY_CLASSES]
    return tuple(
        Event(
            e.offset_m,
            e.kind,
            e.peak_mps2,
            classifier.classes[int(np.argmax(p))],
            float(p[anomalous].sum()),
            classifier.model_id,
        )
        for e, p in zip(events, prob, strict=True)
    )


def locate_window_events(
    acc: FloatArray,
    *,
    rate_hz: int,
    speed_mps: float,
    threshold_mps2: float = EVENT_THRESHOLD_MPS2,
) -> tuple[Event, ...]:
    """Potholes and bumps in a window, each at its distance from the window's first sample
    (`threshold_mps2`: the detectors' threshold; benches compare others with the live one)."""
    if speed_mps < MIN_SPEED_FOR_EVENTS_MPS:
        return ()
    flags = detect_z_thresh(acc, threshold_mps2=threshold_mps2) | detect_z_diff(
        acc, threshold_mps2=threshold_mps2
    )
    distance = np.arange(acc.size, dtype=np.float64) / rate_hz * speed_mps
    merge_m = max(3.0, 0.6 * speed_mps)
    level = float(np.median(acc))
    half = max(1, int(EVENT_HALF_SPAN_S * rate_hz))
    out = []
    for position in locate_events(flags, distance_m=distance, merge_within_m=merge_m):
        centre = round(position / speed_mps * rate_hz)
        dev = acc[max(0, centre - half) : min(acc.size, centre + half)] - level
        peak = float(np.abs(dev).max())
        first = int(np.flatnonzero(np.abs(dev) >= 0.5 * peak)[0])
        kind = "pothole" if dev[first] < 0 else "bump"
        out.append(Event(float(position), kind, peak))
    return tuple(out)


@dataclass(frozen=True)
class SegmentEstimate:
    iri: float
    lower: float
    upper: float
    windows: int


def combine_window_estimates(
    iris: Sequence[float], log_stds: Sequence[float], lengths_m: Sequence[float] | None = None
) -> SegmentEstimate | None:
    """A segment's IRI from its windows', with a 90% interval.

    IRI is an average over distance, so a road's IRI is the length-weighted arithmetic mean of
    its stretches' IRI (a pothole in one window raises the segment's IRI by its share of the
    length; a geometric mean would hide it). Each window's estimate is right in log space, so it
    is first scaled to its mean, exp(-sigma^2 / 2). The relative uncertainty comes from the
    spread of the windows' logs and their own calibration error.
    """
    if not iris:
        return None
    values = np.asarray(iris, dtype=np.float64)
    sigmas = np.asarray(log_stds, dtype=np.float64)
    weights = np.ones_like(values) if lengths_m is None else np.asarray(lengths_m, dtype=np.float64)
    weights = np.where(weights > 0, weights, 0.0)
    if not weights.sum():
        weights = np.ones_like(values)
    n = values.size
    logs = np.log(values)
    residual = float(np.mean(sigmas**2)) / n
    spread = float(np.var(logs, ddof=1)) / n if n > 1 else 0.0
    se = math.sqrt(max(residual, spread) + SYSTEMATIC_LOG_STD**2)
    centre = float(np.average(values * np.exp(-(sigmas**2) / 2), weights=weights))
    return SegmentEstimate(centre, centre * math.exp(-Z_90 * se), centre * math.exp(Z_90 * se), n)


def window_length_m(speed_mps: float, samples: int, rate_hz: int) -> float:
    """Distance a window covers: what its IRI estimate is averaged over."""
    return max(0.0, speed_mps) * samples / max(1, rate_hz)


def pothole_confidence(vehicles: int, repeat_reports: int) -> float:
    """Chance the pothole is real: each distinct vehicle halves the doubt, a repeat pass less."""
    doubt = 0.5**vehicles * 0.8**repeat_reports
    return round(1.0 - doubt, 4)
