"""Features of one vertical-acceleration window for the classifier: shape, spectrum, peaks."""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
BAND_EDGES_HZ = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 11.0, 15.0, 20.0, 25.0)
MIN_WINDOW_SAMPLES = 16
SHORT_WINDOW_S = 0.4
PEAK_PROMINENCES_MPS2 = (2.0, 4.0, 1.0)  # in FEATURE_NAMES' order
WELCH_SEGMENT = 32
WELCH_RATE_HZ = 50.0
WELCH_FREQS_HZ = tuple(float(f) for f in np.fft.rfftfreq(WELCH_SEGMENT, d=1.0 / WELCH_RATE_HZ))


class WindowError(AnalyticsError):
    """A window that features cannot be computed from (too short, not finite)."""


def _band_names() -> list[str]:
    edges = BAND_EDGES_HZ
    return [f"band_{lo:g}_{hi:g}hz" for lo, hi in itertools.pairwise(edges)]


FEATURE_NAMES: tuple[str, ...] = (
    "std",
    "mad",
    "iqr",
    "min_dev",
    "max_dev",
    "peak_to_peak",
    "skew",
    "kurtosis",
    "crest",
    "p01",
    "p05",
    "p95",
    "p99",
    "diff_std",
    "diff_max_abs",
    "diff2_max_abs",
    "frac_over_2sd",
    "peaks_over_2mps2_per_s",
    "peaks_over_4mps2_per_s",
    "peaks_over_1mps2_per_s",
    "burst_ratio",
    "burst_energy_share",
    "local_rms_p10",
    "local_rms_p50",
    "local_rms_p90",
    "main_event_sign",
    "min_to_max_s",
    "main_event_width_s",
    "zero_crossings_per_s",
    "spectral_centroid_hz",
    "spectral_entropy",
    "log_energy",
    *_band_names(),
    *(f"log_psd_{f:g}hz" for f in WELCH_FREQS_HZ),
    "duration_s",
)


def compute_window_features(acc_z_mps2: FloatArray, *, rate_hz: float) -> FloatArray:
    """One row of FEATURE_NAMES for a window of vertical acceleration (m/s^2, gravity included)."""
    acc = np.asarray(acc_z_mps2, dtype=np.float64)
    # Verify the window is usable
    if acc.size < MIN_WINDOW_SAMPLES or not np.all(np.isfinite(acc)):
        raise WindowError(f"window needs {MIN_WINDOW_SAMPLES}+ finite samples, got {acc.size}")
    duration_s = acc.size / rate_hz
    # Centre on the median so a device's gravity offset does not matter.
    dev = acc - np.median(acc)
    std = float(dev.std()) or 1e-9
    diff = np.diff(acc) * rate_hz
    p01, p05, p25, p75, p95, p99 = np.percentile(dev, [1, 5, 25, 75, 95, 99]).tolist()
    return np.array(
        [
            std,
            float(np.median(np.abs(dev))),
            p75 - p25,
            float(dev.min()),
            float(dev.max()),
            float(np.ptp(dev)),
            *_shape_moments(dev),
            float(np.abs(dev).max() / std),
            p01,
            p05,
            p95,
            p99,
            float(diff.std()),
            float(np.abs(diff).max()),
            float(np.abs(np.diff(acc, 2)).max() * rate_hz**2),
            float(np.mean(np.abs(dev) > 2 * std)),
            *(n / duration_s for n in _count_peaks(dev, PEAK_PROMINENCES_MPS2)),
            *_burst_features(dev, rate_hz),
            *_main_event_features(dev, rate_hz),
            float(np.sum(np.diff(np.sign(dev - dev.mean())) != 0)) / duration_s,
            *_spectral_features(dev, rate_hz),
            *_welch_log_psd(dev, rate_hz),
            duration_s,
        ]
    )


def _shape_moments(dev: FloatArray) -> tuple[float, float]:
    """Skewness and excess kurtosis, biased (scipy.stats' defaults; a tenth of their cost)."""
    centred = dev - dev.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= (np.finfo(np.float64).eps * float(np.abs(dev.mean()))) ** 2:
        return float("nan"), float("nan")  # a constant window, as scipy answers it
    return standardised_moments(m2, float(np.mean(centred**3)), float(np.mean(centred**4)))


def standardised_moments(m2: float, m3: float, m4: float) -> tuple[float, float]:
    """Skewness m3 / m2^1.5 and excess kurtosis m4 / m2^2 - 3 of central moments. A power past
    the float range raises in Python (deviations above ~1e154), or underflows to zero (below
    ~1e-154); the ratios themselves are scale-free, so they are then taken a step at a time,
    which stays in range."""
    try:
        return m3 / m2**1.5, m4 / m2**2 - 3.0
    except (OverflowError, ZeroDivisionError):
        root = math.sqrt(m2)
        return m3 / root / m2, m4 / m2 / m2 - 3.0


def _count_peaks(dev: FloatArray, prominences_mps2: tuple[float, ...]) -> list[float]:
    """Number of up and down peaks standing out by at least each prominence (each side's peaks
    and their prominences found once, as find_peaks finds them for any one prominence)."""
    found = [signal.find_peaks(side, prominence=0.0)[1]["prominences"] for side in (dev, -dev)]
    standing = np.concatenate(found)
    return [float(np.count_nonzero(standing >= p)) for p in prominences_mps2]


def _burst_features(dev: FloatArray, rate_hz: float) -> list[float]:
    """Energy concentration (peak short RMS over overall, its share) and local RMS levels."""
    width = max(2, min(dev.size, round(SHORT_WINDOW_S * rate_hz)))
    energy = np.convolve(dev**2, np.ones(width), mode="valid")
    total = float(np.sum(dev**2)) or 1e-12
    local_rms = np.sqrt(energy / width)
    return [
        float(local_rms.max() / np.sqrt(total / dev.size)),
        float(energy.max() / total),
        *(float(v) for v in np.percentile(local_rms, [10, 50, 90])),
    ]


def _main_event_features(dev: FloatArray, rate_hz: float) -> list[float]:
    """Shape of the largest excursion: its sign, min-to-max delay, and width above half its size."""
    peak = int(np.argmax(np.abs(dev)))
    size = abs(float(dev[peak]))
    above = np.abs(dev) >= 0.5 * size
    left, right = peak, peak
    while left > 0 and above[left - 1]:
        left -= 1
    while right < dev.size - 1 and above[right + 1]:
        right += 1
    delay_s = (int(np.argmax(dev)) - int(np.argmin(dev))) / rate_hz
    return [float(np.sign(dev[peak])), delay_s, (right - left + 1) / rate_hz]


def _welch_log_psd(dev: FloatArray, rate_hz: float) -> list[float]:
    """Log PSD on a fixed 0-25 Hz grid, 1.56 Hz apart, whatever the window length or rate."""
    nperseg = min(round(WELCH_SEGMENT * rate_hz / WELCH_RATE_HZ), dev.size)
    freq, psd = welch_psd(dev, rate_hz=rate_hz, nperseg=nperseg)
    grid = np.interp(np.array(WELCH_FREQS_HZ), freq, psd)
    return [float(v) for v in np.log(grid + 1e-9)]


def welch_psd(x: FloatArray, *, rate_hz: float, nperseg: int) -> tuple[FloatArray, FloatArray]:
    """scipy.signal.welch's defaults (periodic Hann, half overlap, each segment's mean removed,
    one-sided density) in plain numpy: its argument checks and dispatch cost a window as much
    as the rest of its features."""
    step = nperseg - nperseg // 2
    starts = np.arange(0, x.size - nperseg + 1, step)
    segments = x[starts[:, None] + np.arange(nperseg)[None, :]]
    segments = segments - segments.mean(axis=1, keepdims=True)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nperseg) / nperseg)
    power = np.abs(np.fft.rfft(segments * window, axis=1)) ** 2 / (rate_hz * np.sum(window**2))
    power[:, 1 : nperseg // 2 + (nperseg % 2)] *= 2.0  # one-sided: all but DC and Nyquist
    freq = np.fft.rfftfreq(nperseg, d=1.0 / rate_hz)
    return np.asarray(freq, dtype=np.float64), np.asarray(power.mean(axis=0), dtype=np.float64)


def _spectral_features(dev: FloatArray, rate_hz: float) -> list[float]:
    """Spectral centroid, entropy, log energy and the relative energy in each band."""
    tapered = (dev - dev.mean()) * np.hanning(dev.size)
    power = np.abs(np.fft.rfft(tapered)) ** 2
    freq = np.fft.rfftfreq(dev.size, d=1.0 / rate_hz)
    total = float(power.sum()) or 1e-12
    share = power / total
    entropy = float(-np.sum(share * np.log(share + 1e-15)) / np.log(max(2, share.size)))
    edges = BAND_EDGES_HZ
    bands = [float(share[(freq >= lo) & (freq < hi)].sum()) for lo, hi in itertools.pairwise(edges)]
    centroid = float(np.sum(freq * share))
    return [centroid, entropy, float(np.log(total / dev.size + 1e-12)), *bands]
