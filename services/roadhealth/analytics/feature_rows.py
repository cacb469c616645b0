"""features.compute_window_features of many windows at once, equal to it to the bit.

The live gate judges a batch's pieces together, and most of them have one length (a 1 s window
whole, or 2 s of a longer one). Computed one window at a time, a piece's ~100 small numpy calls
cost far more than their arithmetic; here the windows of one length are stacked and each step
runs once over the stack. Every step is the per-window formulation's own along the rows: the
same reductions over each row's contiguous samples, the same scalar arithmetic per row in
Python floats where the per-window code uses them, and the per-window calls themselves where a
stacked call could round differently (scipy's find_peaks, np.convolve's dot products, np.interp
off its knots). tests/roadhealth/test_feature_rows.py holds the two to array_equal.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.features import (
    BAND_EDGES_HZ,
    FEATURE_NAMES,
    MIN_WINDOW_SAMPLES,
    PEAK_PROMINENCES_MPS2,
    SHORT_WINDOW_S,
    WELCH_FREQS_HZ,
    WELCH_RATE_HZ,
    WELCH_SEGMENT,
    WindowError,
    _count_peaks,
    compute_window_features,
    standardised_moments,
)

FloatArray = NDArray[np.float64]
_EPS = float(np.finfo(np.float64).eps)
_WELCH_GRID = np.array(WELCH_FREQS_HZ)


def compute_feature_rows(windows: Sequence[FloatArray], *, rate_hz: float) -> FloatArray:
    """One row of FEATURE_NAMES per window, each equal to compute_window_features'."""
    arrays = [np.asarray(w, dtype=np.float64) for w in windows]
    # Verify every window is usable, refusing the first that is not, as one at a time would
    for acc in arrays:
        if acc.size < MIN_WINDOW_SAMPLES or not np.all(np.isfinite(acc)):
            raise WindowError(f"window needs {MIN_WINDOW_SAMPLES}+ finite samples, got {acc.size}")
    out = np.empty((len(arrays), len(FEATURE_NAMES)))
    by_size: dict[int, list[int]] = {}
    for i, acc in enumerate(arrays):
        by_size.setdefault(acc.size, []).append(i)
    for rows in by_size.values():
        if len(rows) == 1:  # alone, stacking costs more than it saves (~1.5x a piece)
            out[rows[0]] = compute_window_features(arrays[rows[0]], rate_hz=rate_hz)
        else:
            out[rows] = _same_size_rows(np.stack([arrays[i] for i in rows]), rate_hz)
    return out


def _same_size_rows(acc: FloatArray, rate_hz: float) -> FloatArray:
    """compute_window_features of each row of acc (windows of one length)."""
    n, size = acc.shape
    duration_s = size / rate_hz
    dev = acc - np.median(acc, axis=1)[:, None]
    std = np.array([float(s) or 1e-9 for s in dev.std(axis=1).tolist()])
    diff = np.diff(acc, axis=1) * rate_hz
    p01, p05, p25, p75, p95, p99 = np.percentile(dev, [1, 5, 25, 75, 95, 99], axis=1)
    absdev = np.abs(dev)
    columns = [
        std,
        np.median(absdev, axis=1),
        p75 - p25,
        dev.min(axis=1),
        dev.max(axis=1),
        np.ptp(dev, axis=1),
        *_shape_moments(dev),
        absdev.max(axis=1) / std,
        p01,
        p05,
        p95,
        p99,
        diff.std(axis=1),
        np.abs(diff).max(axis=1),
        np.abs(np.diff(acc, 2, axis=1)).max(axis=1) * rate_hz**2,
        np.mean(absdev > 2 * std[:, None], axis=1),
        *_peak_rates(dev, duration_s),
        *_burst_features(dev, rate_hz),
        *_main_event_features(dev, absdev, rate_hz),
        _zero_crossings(dev) / duration_s,
        *_spectral_features(dev, rate_hz),
        *_welch_log_psd(dev, rate_hz),
        np.full(n, duration_s),
    ]
    return np.column_stack(columns)


def _shape_moments(dev: FloatArray) -> tuple[FloatArray, FloatArray]:
    """features._shape_moments per row: the means stacked, the rest in Python floats."""
    mean = dev.mean(axis=1)
    centred = dev - mean[:, None]
    m2s = np.mean(centred**2, axis=1).tolist()
    m3s = np.mean(centred**3, axis=1).tolist()
    m4s = np.mean(centred**4, axis=1).tolist()
    skew, kurt = [], []
    for m2, m3, m4, level in zip(m2s, m3s, m4s, np.abs(mean).tolist(), strict=True):
        if m2 <= (_EPS * level) ** 2:
            skew.append(float("nan"))
            kurt.append(float("nan"))
        else:
            s, k = standardised_moments(m2, m3, m4)
            skew.append(s)
            kurt.append(k)
    return np.array(skew), np.array(kurt)


def _peak_rates(dev: FloatArray, duration_s: float) -> list[FloatArray]:
    """Peaks standing out by each prominence, per second (scipy's find_peaks, a row at a time)."""
    counts = np.array([_count_peaks(row, PEAK_PROMINENCES_MPS2) for row in dev])
    return [counts[:, k] / duration_s for k in range(len(PEAK_PROMINENCES_MPS2))]


def _burst_features(dev: FloatArray, rate_hz: float) -> list[FloatArray]:
    """features._burst_features per row (np.convolve a row at a time: its dot products)."""
    size = dev.shape[1]
    width = max(2, min(size, round(SHORT_WINDOW_S * rate_hz)))
    squared = dev**2
    ones = np.ones(width)
    energy = np.stack([np.convolve(row, ones, mode="valid") for row in squared])
    total = np.array([float(t) or 1e-12 for t in np.sum(squared, axis=1).tolist()])
    local_rms = np.sqrt(energy / width)
    p10, p50, p90 = np.percentile(local_rms, [10, 50, 90], axis=1)
    return [
        local_rms.max(axis=1) / np.sqrt(total / size),
        energy.max(axis=1) / total,
        p10,
        p50,
        p90,
    ]


def _main_event_features(dev: FloatArray, absdev: FloatArray, rate_hz: float) -> list[FloatArray]:
    """Sign of the largest excursion, min-to-max delay and the width of the run of samples
    above half its size around it (features._main_event_features' walk, as index arithmetic)."""
    n, size = dev.shape
    rows = np.arange(n)
    peak = np.argmax(absdev, axis=1)
    below = absdev < 0.5 * absdev[rows, peak][:, None]
    position = np.arange(size)[None, :]
    before = np.where(below & (position < peak[:, None]), position, -1).max(axis=1)
    after = np.where(below & (position > peak[:, None]), position, size).min(axis=1)
    delay_s = (np.argmax(dev, axis=1) - np.argmin(dev, axis=1)) / rate_hz
    return [np.sign(dev[rows, peak]), delay_s, (after - before - 1) / rate_hz]


def _zero_crossings(dev: FloatArray) -> FloatArray:
    signs = np.sign(dev - dev.mean(axis=1)[:, None])
    return np.asarray(np.sum(np.diff(signs, axis=1) != 0, axis=1), dtype=np.float64)


def _spectral_features(dev: FloatArray, rate_hz: float) -> list[FloatArray]:
    """features._spectral_features per row."""
    size = dev.shape[1]
    tapered = (dev - dev.mean(axis=1)[:, None]) * np.hanning(size)
    power = np.abs(np.fft.rfft(tapered, axis=1)) ** 2
    freq = np.fft.rfftfreq(size, d=1.0 / rate_hz)
    total = np.array([float(t) or 1e-12 for t in power.sum(axis=1).tolist()])
    share = power / total[:, None]
    entropy = -np.sum(share * np.log(share + 1e-15), axis=1) / np.log(max(2, share.shape[1]))
    bands = [
        share[:, _band(freq, lo, hi)].sum(axis=1) for lo, hi in itertools.pairwise(BAND_EDGES_HZ)
    ]
    centroid = np.sum(freq * share, axis=1)
    return [centroid, entropy, np.log(total / size + 1e-12), *bands]


def _band(freq: NDArray[np.floating], lo: float, hi: float) -> slice:
    """The bins lo <= f < hi of an ascending grid as a slice: a row's bins stay contiguous, so
    they are summed as the row's own selection is (a mask would lay them out column-first)."""
    return slice(int(np.searchsorted(freq, lo, "left")), int(np.searchsorted(freq, hi, "left")))


def _welch_log_psd(dev: FloatArray, rate_hz: float) -> list[FloatArray]:
    """features._welch_log_psd per row: Welch's PSD of each row, on the fixed grid."""
    size = dev.shape[1]
    nperseg = min(round(WELCH_SEGMENT * rate_hz / WELCH_RATE_HZ), size)
    step = nperseg - nperseg // 2
    starts = np.arange(0, size - nperseg + 1, step)
    segments = np.ascontiguousarray(dev[:, starts[:, None] + np.arange(nperseg)[None, :]])
    segments = segments - segments.mean(axis=2, keepdims=True)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nperseg) / nperseg)
    power = np.abs(np.fft.rfft(segments * window, axis=2)) ** 2 / (rate_hz * np.sum(window**2))
    power[:, :, 1 : nperseg // 2 + (nperseg % 2)] *= 2.0
    psd = power.mean(axis=1)
    freq = np.fft.rfftfreq(nperseg, d=1.0 / rate_hz)
    if np.array_equal(freq, _WELCH_GRID):
        grid = psd  # np.interp answers a knot's own value exactly
    else:
        grid = np.stack([np.interp(_WELCH_GRID, freq, row) for row in psd])
    return list(np.log(grid + 1e-9).T)
