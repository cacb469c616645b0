"""IRI estimated from body acceleration and speed, by a per-vehicle-class log-linear calibration."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.iri import (
    RS_TO_M_PER_KM,
    classify_condition,
    compute_rectified_slope,
)
from services.roadhealth.analytics.profile import draw_anomalies, generate_road_profile
from services.roadhealth.analytics.quartercar import get_vehicle, simulate_ride
from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
CALIBRATION_FORMAT = "smartcity.roadhealth.iri-calibration"
BANDS_HZ: tuple[tuple[float, float], ...] = ((0.5, 2.0), (2.0, 5.0), (5.0, 10.0), (10.0, 25.0))
FEATURE_NAMES = ("bias", *(f"log_rms_{lo:g}_{hi:g}hz" for lo, hi in BANDS_HZ), "log_speed")
RMS_FLOOR_MPS2 = 1e-4
Z_90 = 1.6449
LEAD_IN_M = 20.0
MIN_WINDOW_S = 2.0


class CalibrationError(AnalyticsError):
    """A calibration file or estimation input that cannot be used."""


@dataclass(frozen=True)
class IriCalibration:
    """Coefficients of log(IRI) on acceleration band features for one vehicle class at one rate."""

    vehicle_class: str
    rate_hz: float
    feature_names: tuple[str, ...]
    coef: tuple[float, ...]
    residual_std_log: float
    speed_range_mps: tuple[float, float]
    n_segments: int
    segment_length_m: float


@dataclass(frozen=True)
class IriEstimate:
    """IRI with a 90% prediction interval and its condition class."""

    iri_m_per_km: float
    lower_m_per_km: float
    upper_m_per_km: float
    condition: str


def compute_acceleration_features(
    acc_z_mps2: FloatArray, *, speed_mps: float, rate_hz: float
) -> FloatArray:
    """[1, log band RMS of the detrended acceleration..., log speed]: the regression's inputs."""
    acc = np.asarray(acc_z_mps2, dtype=np.float64)
    if acc.size < MIN_WINDOW_S * rate_hz or not np.all(np.isfinite(acc)):
        raise CalibrationError(f"need at least {MIN_WINDOW_S} s of finite acceleration")
    if speed_mps <= 0:
        raise CalibrationError("speed_mps must be positive")
    spectrum = np.abs(np.fft.rfft(acc - acc.mean())) ** 2
    # Parseval: the mean square of the signal is 2 sum |X|^2 / N^2 over positive frequencies.
    power = 2.0 * spectrum / acc.size**2
    bands = [float(power[lo:hi].sum()) for lo, hi in _band_bins(acc.size, rate_hz)]
    logs = [math.log(max(math.sqrt(p), RMS_FLOOR_MPS2)) for p in bands]
    return np.array([1.0, *logs, math.log(speed_mps)])


@lru_cache(maxsize=64)
def _band_bins(samples: int, rate_hz: float) -> tuple[tuple[int, int], ...]:
    """Each band's bins [lo, hi) of a window's spectrum: those with lo <= f < hi. The
    frequencies rise, so the bins are a slice, worked out once per window length and rate
    (their masks cost a window as much as its FFT)."""
    freq = np.fft.rfftfreq(samples, d=1.0 / rate_hz)
    return tuple(
        (int(np.searchsorted(freq, lo, "left")), int(np.searchsorted(freq, hi, "left")))
        for lo, hi in BANDS_HZ
    )


@lru_cache(maxsize=64)
def _coefficients(coef: tuple[float, ...]) -> FloatArray:
    """A calibration's coefficients as an array, made once (read-only: it is shared)."""
    array = np.array(coef)
    array.flags.writeable = False
    return array


def estimate_iri(
    acc_z_mps2: FloatArray, *, speed_mps: float, rate_hz: float, calibration: IriCalibration
) -> IriEstimate:
    """IRI of the road under a stretch of acceleration at speed, with a 90% prediction interval."""
    if abs(rate_hz - calibration.rate_hz) > 1e-6:
        raise CalibrationError(f"calibration is for {calibration.rate_hz:g} Hz, got {rate_hz:g} Hz")
    x = compute_acceleration_features(acc_z_mps2, speed_mps=speed_mps, rate_hz=rate_hz)
    log_iri = float(x @ _coefficients(calibration.coef))
    half = Z_90 * calibration.residual_std_log
    iri = math.exp(log_iri)
    return IriEstimate(
        iri, math.exp(log_iri - half), math.exp(log_iri + half), classify_condition(iri)
    )


@dataclass(frozen=True)
class CalibrationSegment:
    """One simulated segment: the acceleration a vehicle recorded over it and its true IRI."""

    acc_z_mps2: FloatArray
    speed_mps: float
    iri_m_per_km: float


def simulate_segment(
    *,
    vehicle_class: str,
    seed: int,
    rate_hz: float = 50.0,
    segment_length_m: float = 100.0,
    iri_range_m_per_km: tuple[float, float] = (0.5, 9.0),
    speed_range_mps: tuple[float, float] = (8.0, 25.0),
) -> CalibrationSegment:
    """A random segment (log-uniform roughness, sometimes a pothole) driven at random speed."""
    rng = np.random.default_rng(seed)
    lo, hi = (math.log(v / 2.19) * 2 for v in iri_range_m_per_km)
    gd = 16e-6 * math.exp(rng.uniform(lo, hi))
    length_m = segment_length_m + 2 * LEAD_IN_M
    n_anomalies = int(rng.random() < 0.2)
    anomalies = draw_anomalies(
        length_m=length_m,
        n_potholes=n_anomalies,
        n_bumps=0,
        rng=rng,
        margin_m=LEAD_IN_M + 5.0,
    )
    profile = generate_road_profile(length_m=length_m, seed=seed, gd_n0_m3=gd, anomalies=anomalies)
    speed = float(rng.uniform(*speed_range_mps))
    ride = simulate_ride(
        profile.elevation_m,
        spacing_m=profile.spacing_m,
        speed_mps=speed,
        rate_hz=rate_hz,
        car=get_vehicle(vehicle_class),
        seed=seed,
    )
    end_m = LEAD_IN_M + segment_length_m
    on_segment = (ride.distance_m >= LEAD_IN_M) & (ride.distance_m < end_m)
    position_m, rs = compute_rectified_slope(profile.elevation_m, profile.spacing_m)
    truth = float(rs[(position_m >= LEAD_IN_M) & (position_m < end_m)].mean() * RS_TO_M_PER_KM)
    return CalibrationSegment(ride.acc_z_mps2[on_segment], speed, truth)


def fit_iri_calibration(
    *,
    vehicle_class: str,
    n_segments: int = 400,
    seed: int = 0,
    rate_hz: float = 50.0,
    segment_length_m: float = 100.0,
    speed_range_mps: tuple[float, float] = (8.0, 25.0),
) -> IriCalibration:
    """Least-squares fit of log IRI on acceleration features over seeded simulated segments."""
    rows, targets = [], []
    for i in range(n_segments):
        seg = simulate_segment(
            vehicle_class=vehicle_class,
            seed=seed * 1_000_003 + i,
            rate_hz=rate_hz,
            segment_length_m=segment_length_m,
            speed_range_mps=speed_range_mps,
        )
        rows.append(
            compute_acceleration_features(seg.acc_z_mps2, speed_mps=seg.speed_mps, rate_hz=rate_hz)
        )
        targets.append(math.log(seg.iri_m_per_km))
    x, y = np.array(rows), np.array(targets)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = max(1, n_segments - x.shape[1])
    residual_std = float(np.sqrt(np.sum((y - x @ coef) ** 2) / dof))
    return IriCalibration(
        vehicle_class,
        rate_hz,
        FEATURE_NAMES,
        tuple(float(c) for c in coef),
        residual_std,
        speed_range_mps,
        n_segments,
        segment_length_m,
    )


def save_calibration(calibration: IriCalibration, path: Path) -> None:
    """Write a calibration as a small JSON document."""
    doc = {"format": CALIBRATION_FORMAT, "version": 1, **asdict(calibration)}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def load_calibration(path: Path) -> IriCalibration:
    """Read a calibration written by save_calibration, refusing anything else."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != CALIBRATION_FORMAT or doc.get("version") != 1:
            raise CalibrationError(f"{path} is not an IRI calibration file")
        return IriCalibration(
            vehicle_class=str(doc["vehicle_class"]),
            rate_hz=float(doc["rate_hz"]),
            feature_names=tuple(doc["feature_names"]),
            coef=tuple(float(c) for c in doc["coef"]),
            residual_std_log=float(doc["residual_std_log"]),
            speed_range_mps=(float(doc["speed_range_mps"][0]), float(doc["speed_range_mps"][1])),
            n_segments=int(doc["n_segments"]),
            segment_length_m=float(doc["segment_length_m"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, CalibrationError):
            raise
        raise CalibrationError(f"cannot read calibration {path}: {exc}") from exc


DEFAULT_CALIBRATION_DIR = Path(__file__).with_name("calibrations")
DEFAULT_RATES_HZ = (50.0, 100.0)


def get_default_calibration_path(vehicle_class: str, rate_hz: float) -> Path:
    """Where the shipped calibration of a vehicle class at a sample rate lives."""
    return DEFAULT_CALIBRATION_DIR / f"{vehicle_class}_{rate_hz:g}hz.json"


def load_default_calibration(vehicle_class: str, rate_hz: float = 50.0) -> IriCalibration:
    """The shipped calibration of a vehicle class (golden, car, van, bus) at 50 or 100 Hz."""
    path = get_default_calibration_path(vehicle_class, rate_hz)
    if not path.is_file():
        raise CalibrationError(f"no shipped calibration for {vehicle_class!r} at {rate_hz:g} Hz")
    return load_calibration(path)


def write_default_calibrations(vehicle_classes: tuple[str, ...], n_segments: int = 400) -> None:
    """Regenerate the shipped calibrations (seed 0), as they were made."""
    DEFAULT_CALIBRATION_DIR.mkdir(exist_ok=True)
    for vehicle_class in vehicle_classes:
        for rate_hz in DEFAULT_RATES_HZ:
            cal = fit_iri_calibration(
                vehicle_class=vehicle_class, n_segments=n_segments, seed=0, rate_hz=rate_hz
            )
            save_calibration(cal, get_default_calibration_path(vehicle_class, rate_hz))
