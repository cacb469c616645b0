"""International Roughness Index per ASTM E1926: Golden Car at 80 km/h, 250 mm smoothed profile."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.quartercar import GOLDEN_CAR, discretise, filter_state_space
from services.roadhealth.errors import AnalyticsError

IRI_SPEED_MPS = 80.0 / 3.6
IRI_BASELENGTH_M = 0.25
IRI_INIT_LENGTH_M = 11.0
GOOD_BELOW_M_PER_KM = 1.5
POOR_ABOVE_M_PER_KM = 2.68
RS_TO_M_PER_KM = 1000.0

FloatArray = NDArray[np.float64]


class ProfileInputError(AnalyticsError):
    """A profile that IRI cannot be computed from (too short, uneven or not finite)."""


def compute_rectified_slope(
    elevation_m: FloatArray, spacing_m: float
) -> tuple[FloatArray, FloatArray]:
    """Per-step |sprung - unsprung slope| (m/m) of the E1926 filter and each step's distance."""
    y = np.asarray(elevation_m, dtype=np.float64)
    # Verify the profile is usable
    if spacing_m <= 0 or not np.all(np.isfinite(y)):
        raise ProfileInputError("spacing must be positive and elevations finite")
    base = max(1, round(IRI_BASELENGTH_M / spacing_m))
    if (y.size - 1) * spacing_m < IRI_INIT_LENGTH_M or y.size <= base + 1:
        raise ProfileInputError(f"profile must be at least {IRI_INIT_LENGTH_M} m long")
    # The 250 mm moving average and the slope conversion are one difference over the baselength.
    slope = (y[base:] - y[:-base]) / (base * spacing_m)
    init_index = min(round(IRI_INIT_LENGTH_M / spacing_m), y.size - 1)
    init_slope = (y[init_index] - y[0]) / (init_index * spacing_m)
    st, pr = discretise(GOLDEN_CAR, spacing_m / IRI_SPEED_MPS)
    c_row = np.array([1.0, 0.0, -1.0, 0.0])
    # The standard starts the filter in steady state on the initial slope, where the output is 0,
    # so the run equals a zero-state run on the slope relative to that initial slope.
    rs = np.abs(filter_state_space(st, pr, c_row @ st, float(c_row @ pr[:, 0]), slope - init_slope))
    position_m = (np.arange(rs.size, dtype=np.float64) + 0.5 * base) * spacing_m
    return position_m, rs.astype(np.float64)


def compute_iri(elevation_m: FloatArray, spacing_m: float) -> float:
    """IRI in m/km of a whole profile sampled every spacing_m."""
    _, rs = compute_rectified_slope(elevation_m, spacing_m)
    return float(np.mean(rs) * RS_TO_M_PER_KM)


def compute_iri_intervals(
    elevation_m: FloatArray, spacing_m: float, interval_m: float = 100.0
) -> FloatArray:
    """IRI in m/km for each consecutive interval_m of the profile (the last may be partial)."""
    position_m, rs = compute_rectified_slope(elevation_m, spacing_m)
    index = np.floor(position_m / interval_m).astype(np.int64)
    sums = np.bincount(index, weights=rs)
    counts = np.bincount(index)
    return np.asarray(sums / np.maximum(counts, 1) * RS_TO_M_PER_KM, dtype=np.float64)


def classify_condition(
    iri_m_per_km: float,
    *,
    good_below: float = GOOD_BELOW_M_PER_KM,
    poor_above: float = POOR_ABOVE_M_PER_KM,
) -> str:
    """Condition class good / fair / poor of an IRI, with configurable thresholds."""
    if iri_m_per_km < good_below:
        return "good"
    return "fair" if iri_m_per_km <= poor_above else "poor"
