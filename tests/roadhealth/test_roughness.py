"""IRI estimated from acceleration and speed, scored against simulated truth on unseen seeds."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from services.roadhealth.analytics.dataset import read_window_folder
from services.roadhealth.analytics.iri import classify_condition
from services.roadhealth.analytics.roughness import (
    BANDS_HZ,
    RMS_FLOOR_MPS2,
    CalibrationError,
    compute_acceleration_features,
    estimate_iri,
    fit_iri_calibration,
    load_calibration,
    load_default_calibration,
    save_calibration,
    simulate_segment,
)
from services.roadhealth.analytics.synthetic import SURFACE_CLASSES

UNSEEN = 90_000_000  # calibrations used seeds from 0; these segments were never seen


@pytest.mark.parametrize("vehicle_class", ["car", "bus"])
def test_estimate_is_within_about_ten_percent_of_true_iri(vehicle_class: str) -> None:
    cal = load_default_calibration(vehicle_class, 50.0)
    errors, covered = [], 0
    for i in range(40):
        seg = simulate_segment(vehicle_class=vehicle_class, seed=UNSEEN + i)
        est = estimate_iri(seg.acc_z_mps2, speed_mps=seg.speed_mps, rate_hz=50, calibration=cal)
        errors.append(abs(est.iri_m_per_km / seg.iri_m_per_km - 1))
        covered += est.lower_m_per_km <= seg.iri_m_per_km <= est.upper_m_per_km
    # Measured: median 6%, 90th percentile about 20% (200 segments, bench).
    assert np.median(errors) < 0.10
    assert covered >= 0.75 * 40


def test_good_fair_poor_roads_are_recovered_in_most_cases() -> None:
    cal = load_default_calibration("car", 50.0)
    hits = 0
    targets = [1.0, 2.1, 4.0] * 8  # centres of good, fair and poor
    for i, target in enumerate(targets):
        seg = simulate_segment(
            vehicle_class="car", seed=UNSEEN + 500 + i, iri_range_m_per_km=(target, target)
        )
        est = estimate_iri(seg.acc_z_mps2, speed_mps=seg.speed_mps, rate_hz=50, calibration=cal)
        hits += est.condition == classify_condition(seg.iri_m_per_km)
    assert hits >= 0.85 * len(targets)


def test_calibration_round_trips_through_json(tmp_path: Path) -> None:
    cal = fit_iri_calibration(vehicle_class="van", n_segments=30, seed=3)
    path = tmp_path / "van.json"
    save_calibration(cal, path)
    assert load_calibration(path) == cal
    assert json.loads(path.read_text())["vehicle_class"] == "van"


def test_foreign_or_mismatched_calibrations_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(CalibrationError, match="not an IRI calibration"):
        load_calibration(other)
    with pytest.raises(CalibrationError, match="no shipped calibration"):
        load_default_calibration("tram")
    cal = load_default_calibration("car", 100.0)
    with pytest.raises(CalibrationError, match="100 Hz"):
        estimate_iri(np.full(500, 9.81), speed_mps=10.0, rate_hz=50.0, calibration=cal)
    with pytest.raises(CalibrationError, match="at least"):
        estimate_iri(np.full(50, 9.81), speed_mps=10.0, rate_hz=100.0, calibration=cal)


def _features_with_masks(acc: np.ndarray, *, speed_mps: float, rate_hz: float) -> np.ndarray:
    """compute_acceleration_features as written before its band bins were cached: a mask of
    the spectrum's frequencies per band, on every call."""
    spectrum = np.abs(np.fft.rfft(acc - acc.mean())) ** 2
    freq = np.fft.rfftfreq(acc.size, d=1.0 / rate_hz)
    power = 2.0 * spectrum / acc.size**2
    bands = [float(power[(freq >= lo) & (freq < hi)].sum()) for lo, hi in BANDS_HZ]
    logs = [math.log(max(math.sqrt(p), RMS_FLOOR_MPS2)) for p in bands]
    return np.array([1.0, *logs, math.log(speed_mps)])


REAL = Path("/work/shared/data/road/gonzalez2017")


def test_window_features_and_iri_are_what_they_were_bit_for_bit() -> None:
    # Window lengths even and odd (a Nyquist bin or not), rates the calibrations have and
    # others (band edges on a bin or between bins), and the real Gonzalez windows where present
    rng = np.random.default_rng(11)
    cases = [
        (9.81 + rng.normal(0, s, n), rate)
        for s in (0.05, 1.0, 4.0)
        for n in (100, 101, 200, 257, 400, 1000)
        for rate in (50.0, 100.0, 64.0)
        if n >= 2 * rate  # the estimate's shortest window, 2 s
    ]
    if REAL.is_dir():
        real, _labels = read_window_folder(REAL, known_classes=SURFACE_CLASSES)
        cases += [(w, 50.0) for w in real if w.size >= 2 * 50]
    calibration = load_default_calibration("car", 50.0)
    for acc, rate in cases:
        new = compute_acceleration_features(acc, speed_mps=11.3, rate_hz=rate)
        assert np.array_equal(new, _features_with_masks(acc, speed_mps=11.3, rate_hz=rate))
        if rate == 50.0:
            old_log_iri = float(new @ np.array(calibration.coef))
            got = estimate_iri(acc, speed_mps=11.3, rate_hz=rate, calibration=calibration)
            assert got.iri_m_per_km == math.exp(old_log_iri)
