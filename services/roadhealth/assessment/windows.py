"""Per-window and per-segment analytics on top of the analytics library.

A window gets an IRI estimate (per-vehicle-class calibration) and its located events, each at
its onset (analytics/shocks.py: the middle of the flagged samples trailed the pothole by the
cabin's ringing). The learned surface classifier then judges the 2 s piece of the window around
each event. Two rules, by the model:

- a version-2 gate model (the live default, `GATE_CLASSIFIER`: the ensemble trained on the
  gate's pieces of real windows and of the simulator's passes, analytics/ensemble.py; pieces
  shorter than 2 s go to `SHORT_GATE_CLASSIFIER`, trained with every piece also cut shorter,
  analytics/routed_gate.py): shocks
  that leave the window's median by 1.5 m/s^2, and the label decides: a pothole is reported
  when the most likely class of the piece is "potholes" (the direction of the first excursion
  is kept as `kind` but does not decide: on real phones it is downwards for 71% of asphalt
  bumps and only about half of potholes);
- a version-1 model (the live default until issue 15, `V1_CLASSIFIER`): the classic Z-THRESH /
  Z-DIFF detectors at 3 m/s^2, and a pothole is a downward event whose piece the classifier
  gives at least even odds of a discrete anomaly (pothole, asphalt or metal bump).

A gate model judges pieces down to the shortest it was trained on (`can_judge`; whole 2 s
pieces for a model trained without short cuts): a shock in a window shorter than that keeps no
label and files no report.

The label, the probability of any discrete anomaly and the model's id are kept with the event.
A segment's IRI is the mean of its windows' log estimates, with a 90% interval that combines the
calibration's residual, the spread between windows and a floor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.anomaly import ClassifierError
from services.roadhealth.analytics.ensemble import EnsembleClassifier, load_any_classifier
from services.roadhealth.analytics.roughness import (
    CalibrationError,
    IriCalibration,
    estimate_iri,
    load_default_calibration,
)
from services.roadhealth.analytics.routed_gate import RoutedGate
from services.roadhealth.analytics.shocks import (
    PIECE_S,
    SHOCK_THRESHOLD_MPS2,
    find_classic_shocks,
    find_shocks,
    gate_piece,
    may_hold_shocks,
)

FloatArray = NDArray[np.float64]
Z_90 = 1.6449
EVENT_THRESHOLD_MPS2 = SHOCK_THRESHOLD_MPS2  # with a gate model (from the window's median)
CLASSIC_THRESHOLD_MPS2 = 3.0  # with a version-1 model (Z-THRESH from 1 g, Z-DIFF)
MIN_SPEED_FOR_IRI_MPS = 4.0
MIN_SPEED_FOR_EVENTS_MPS = 2.0
SYSTEMATIC_LOG_STD = 0.05  # calibration bias the windows of one segment share
log = logging.getLogger(__name__)
MODELS = Path(__file__).parent.parent / "analytics" / "models"
V1_CLASSIFIER = MODELS / "surface_gonzalez2017_50hz.json"
# `smartcity road train-classifier --pieces` on the Gonzalez et al. 2017 windows
GATE_CLASSIFIER = MODELS / "surface_gonzalez2017_50hz_gate_v2.json"
# `... --pieces --short-pieces`: judges the pieces shorter than 2 s (analytics/routed_gate.py)
SHORT_GATE_CLASSIFIER = MODELS / "surface_gonzalez2017_50hz_gate_v2_short.json"
DEFAULT_CLASSIFIER = GATE_CLASSIFIER
ANOMALY_CLASSES = frozenset({"asphalt_bumps", "metal_bumps", "potholes"})
POTHOLE_CLASS = "potholes"
MIN_ANOMALY_PROBABILITY = 0.5
V1_CONTEXT_S = 1.0  # each side of an event's middle, for a version-1 model


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

    offset_m: float  # of its onset
    kind: str  # pothole | bump: the direction of the first excursion (down | up)
    peak_mps2: float
    surface: str | None = None  # the classifier's most likely class
    p_anomaly: float | None = None  # its probability of a pothole or bump class
    model: str | None = None  # the classifier's model id
    label_decides: bool = False  # judged by a gate model (module docstring)
    middle_m: float | None = None  # of its flagged samples: the centre a version-1 model judges

    @property
    def reported(self) -> bool:
        """A pothole report (module docstring): by a gate model, its label is "potholes"; by a
        version-1 model, a downward event it does not call plain road; without a classifier,
        a downward event."""
        if self.label_decides:
            return self.surface == POTHOLE_CLASS  # None: a piece too short to judge
        if self.surface is None or self.p_anomaly is None:
            return self.kind == "pothole"
        return self.kind == "pothole" and self.p_anomaly >= MIN_ANOMALY_PROBABILITY

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
    """The live surface classifier: the version-2 gate, its short pieces judged by the short
    gate (RoutedGate); the gate alone if the short one is unreadable, None if the gate is."""
    try:
        whole = load_any_classifier(DEFAULT_CLASSIFIER)
    except ClassifierError:
        return None
    try:
        short = load_any_classifier(SHORT_GATE_CLASSIFIER)
    except ClassifierError as exc:
        log.warning("pieces under 2 s will not be judged: the short-piece gate: %s", exc)
        return whole
    if isinstance(whole, EnsembleClassifier) and isinstance(short, EnsembleClassifier):
        return RoutedGate(whole, short)
    return whole


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
    judge = classifier or default_classifier()
    events = locate_window_events(
        acc, rate_hz=rate_hz, speed_mps=speed_mps, classic=not is_gate_model(judge)
    )
    if judge is not None and events:
        events = judge_events(judge, acc, events, rate_hz=rate_hz, speed_mps=speed_mps)
    return WindowAnalysis(iri, log_std, events)


@dataclass(frozen=True)
class WindowInput:
    """What a window's analysis reads of it."""

    acc_z: Sequence[float]
    rate_hz: int
    speed_mps: float
    vehicle_class: str


def analyse_windows(
    windows: Sequence[WindowInput], *, classifier: LiveClassifier | None = None
) -> list[WindowAnalysis]:
    """analyse_window of each window, the classifier asked once per sample rate about the
    events of all of them: a batch's windows cost one call, not one per window with events
    (a call's fixed cost was a quarter of the gate's)."""
    judge = classifier or default_classifier()
    classic = not is_gate_model(judge)
    arrays = [np.asarray(w.acc_z, dtype=np.float64) for w in windows]
    # Most windows hold no shock: found for all of them at once (classic rules: each window)
    candidates = (
        [True] * len(arrays)
        if classic
        else may_hold_shocks(arrays, threshold_mps2=EVENT_THRESHOLD_MPS2)
    )
    found = []
    for w, acc, candidate in zip(windows, arrays, candidates, strict=True):
        iri, log_std = estimate_window_iri(
            acc, rate_hz=w.rate_hz, speed_mps=w.speed_mps, vehicle_class=w.vehicle_class
        )
        events = (
            locate_window_events(acc, rate_hz=w.rate_hz, speed_mps=w.speed_mps, classic=classic)
            if candidate
            else ()
        )
        found.append((acc, iri, log_std, events))
    out = [WindowAnalysis(iri, log_std, events) for _acc, iri, log_std, events in found]
    if judge is None:
        return out
    for rate_hz in sorted({w.rate_hz for w in windows}):
        at = [i for i, w in enumerate(windows) if w.rate_hz == rate_hz and found[i][3]]
        pieces = [
            event_pieces(
                judge, found[i][0], found[i][3], rate_hz=rate_hz, speed_mps=windows[i].speed_mps
            )
            for i in at
        ]
        if not at:
            continue
        rows = _predict(judge, [p for ps in pieces for p in ps], rate_hz=rate_hz)
        start = 0
        for i, ps in zip(at, pieces, strict=True):
            events = judged(judge, found[i][3], rows[start : start + len(ps)])
            out[i] = WindowAnalysis(out[i].iri, out[i].iri_log_std, events)
            start += len(ps)
    return out


def can_judge(classifier: LiveClassifier, piece: FloatArray, *, rate_hz: float) -> bool:
    """Whether the classifier may judge a piece: a gate model one at least as long as the
    shortest it was trained on (`min_piece_s`, ensemble.py `short_cuts`), else only a whole one
    (PIECE_S). A gate trained without short cuts has for pieces shorter than that only real
    pothole windows (35 of the 62; every regular, worn-out and asphalt-bump window is 2 s or
    longer), so it calls any short piece a pothole: a segment's last, shorter window of the
    simulator's fleet was a false report 11 times in 12 (issue 15, eighth session), 1 s
    windows 56% of the time."""
    if not isinstance(classifier, EnsembleClassifier | RoutedGate):
        return True
    shortest = min(classifier.min_piece_s or PIECE_S, PIECE_S)
    return piece.size >= round(shortest * rate_hz)


def _predict(
    classifier: LiveClassifier, pieces: list[FloatArray], *, rate_hz: int
) -> list[FloatArray | None]:
    """The classifier's probabilities for each piece it may judge (can_judge), None for the
    others; one call for all of them."""
    usable = [i for i, p in enumerate(pieces) if can_judge(classifier, p, rate_hz=rate_hz)]
    rows: list[FloatArray | None] = [None] * len(pieces)
    if usable:
        prob = classifier.predict_proba([pieces[i] for i in usable], rate_hz=float(rate_hz))
        for i, row in zip(usable, prob, strict=True):
            rows[i] = row
    return rows


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


def is_gate_model(classifier: LiveClassifier | None) -> bool:
    """Whether a classifier's label decides a report (a version-2 model; module docstring)."""
    return isinstance(classifier, EnsembleClassifier | RoutedGate)


def judge_events(
    classifier: LiveClassifier,
    acc: FloatArray,
    events: tuple[Event, ...],
    *,
    rate_hz: int,
    speed_mps: float,
) -> tuple[Event, ...]:
    """Each event with the classifier's label and anomaly probability of its surroundings:
    for a gate model the 2 s from just before its onset (analytics/shocks.py), for a version-1
    model the 2 s centred on the middle of its flagged samples (what it was always shown)."""
    pieces = event_pieces(classifier, acc, events, rate_hz=rate_hz, speed_mps=speed_mps)
    return judged(classifier, events, _predict(classifier, pieces, rate_hz=rate_hz))


def event_pieces(
    classifier: LiveClassifier,
    acc: FloatArray,
    events: tuple[Event, ...],
    *,
    rate_hz: int,
    speed_mps: float,
) -> list[FloatArray]:
    """The piece of the window the classifier judges for each event (judge_events)."""
    if is_gate_model(classifier):
        return [
            gate_piece(acc, round(e.offset_m / speed_mps * rate_hz), rate_hz=rate_hz)
            for e in events
        ]
    half = round(V1_CONTEXT_S * rate_hz)
    pieces = []
    for e in events:
        centre = round((e.offset_m if e.middle_m is None else e.middle_m) / speed_mps * rate_hz)
        start = max(0, min(centre - half, acc.size - 2 * half))
        pieces.append(acc[start : start + 2 * half])
    return pieces


def judged(
    classifier: LiveClassifier, events: tuple[Event, ...], prob: Sequence[FloatArray | None]
) -> tuple[Event, ...]:
    """The events with the classifier's probabilities of their pieces (rows in event order;
    None: a piece it may not judge, so no label and, by a gate model, no report)."""
    anomalous = [i for i, c in enumerate(classifier.classes) if c in ANOMALY_CLASSES]
    return tuple(
        Event(
            e.offset_m,
            e.kind,
            e.peak_mps2,
            None if p is None else classifier.classes[int(np.argmax(p))],
            None if p is None else float(p[anomalous].sum()),
            classifier.model_id,
            is_gate_model(classifier),
            e.middle_m,
        )
        for e, p in zip(events, prob, strict=True)
    )


def locate_window_events(
    acc: FloatArray,
    *,
    rate_hz: int,
    speed_mps: float,
    threshold_mps2: float | None = None,
    classic: bool = False,
) -> tuple[Event, ...]:
    """Shocks in a window, each at its onset's distance from the window's first sample: from
    the window's median, or with `classic` the Z-THRESH / Z-DIFF flags (`threshold_mps2`: the
    rule's own unless given; benches compare others)."""
    if speed_mps < MIN_SPEED_FOR_EVENTS_MPS:
        return ()
    find = find_classic_shocks if classic else find_shocks
    default = CLASSIC_THRESHOLD_MPS2 if classic else EVENT_THRESHOLD_MPS2
    shocks = find(
        acc, rate_hz=rate_hz, speed_mps=speed_mps, threshold_mps2=threshold_mps2 or default
    )
    metres = speed_mps / rate_hz
    return tuple(
        Event(
            s.onset * metres,
            "pothole" if s.downward else "bump",
            s.peak_mps2,
            middle_m=s.middle * metres,
        )
        for s in shocks
    )


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
