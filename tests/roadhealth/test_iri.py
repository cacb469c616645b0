"""IRI per ASTM E1926 against independent oracles: flat roads, an ODE solver, a sine's response."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from services.roadhealth.analytics.iri import (
    IRI_SPEED_MPS,
    ProfileInputError,
    classify_condition,
    compute_iri,
    compute_iri_intervals,
)
from services.roadhealth.analytics.profile import estimate_gd_n0_for_iri, generate_road_profile
from services.roadhealth.analytics.quartercar import GOLDEN_CAR, compute_state_space


def test_flat_and_uniformly_sloped_roads_have_zero_iri() -> None:
    assert compute_iri(np.zeros(2000), 0.05) == pytest.approx(0.0, abs=1e-12)
    sloped = (0.03 * np.arange(2000) * 0.05).astype(np.float64)
    assert compute_iri(sloped, 0.05) == pytest.approx(0.0, abs=1e-9)


def _iri_by_ode(elevation_m: np.ndarray, spacing_m: float) -> float:
    """Oracle: elevation-form quarter car integrated in time by an adaptive solver."""
    base = round(0.25 / spacing_m)
    smooth = np.convolve(elevation_m, np.ones(base) / base, mode="valid")
    x = (np.arange(smooth.size) + (base - 1) / 2) * spacing_m
    a, b = compute_state_space(GOLDEN_CAR)
    init = round(11.0 / spacing_m)
    slope0 = (elevation_m[init] - elevation_m[0]) / (init * spacing_m)

    def rhs(t: float, s: np.ndarray) -> np.ndarray:
        road = np.interp(x[0] + IRI_SPEED_MPS * t, x, smooth)
        return np.concatenate([a @ s[:4] + b[:, 0] * road, [abs(s[1] - s[3])]])

    v0 = slope0 * IRI_SPEED_MPS
    s0 = [smooth[0], v0, smooth[0], v0, 0.0]
    t_end = (x[-1] - x[0]) / IRI_SPEED_MPS
    sol = solve_ivp(rhs, (0, t_end), s0, max_step=spacing_m / IRI_SPEED_MPS, rtol=1e-7)
    return float(sol.y[4, -1] / (x[-1] - x[0]) * 1000)


def test_iri_matches_an_independent_time_domain_integration() -> None:
    profile = generate_road_profile(length_m=60.0, seed=3, gd_n0_m3=estimate_gd_n0_for_iri(2.5))
    assert compute_iri(profile.elevation_m, 0.05) == pytest.approx(
        _iri_by_ode(profile.elevation_m, 0.05), rel=0.01
    )


@pytest.mark.parametrize("wavelength_m", [2.4, 15.4, 0.8])
def test_iri_of_a_sine_matches_the_golden_car_frequency_response(wavelength_m: float) -> None:
    spacing_m, amplitude_m = 0.05, 0.002
    x = np.arange(0, 1500, spacing_m)
    elevation = amplitude_m * np.sin(2 * np.pi * x / wavelength_m)
    omega = 2 * np.pi * IRI_SPEED_MPS / wavelength_m
    a, b = compute_state_space(GOLDEN_CAR)
    response = np.array([0, 1, 0, -1]) @ np.linalg.solve(1j * omega * np.eye(4) - a, b[:, 0])
    smoothing = np.sinc(0.25 / wavelength_m)  # the 250 mm moving average of a sine
    expected = 2 / np.pi * abs(response) * amplitude_m * smoothing / IRI_SPEED_MPS * 1000
    assert compute_iri(elevation, spacing_m) == pytest.approx(expected, rel=0.03)


def test_iri_does_not_depend_much_on_profile_spacing() -> None:
    fine = generate_road_profile(length_m=500.0, seed=9, roughness_class="A", spacing_m=0.025)
    coarse = fine.elevation_m[::10]
    assert compute_iri(coarse, 0.25) == pytest.approx(fine.iri_m_per_km, rel=0.05)


def test_intervals_locate_the_rough_stretch() -> None:
    smooth = generate_road_profile(length_m=300.0, seed=1, gd_n0_m3=estimate_gd_n0_for_iri(1.0))
    rough = generate_road_profile(length_m=300.0, seed=2, gd_n0_m3=estimate_gd_n0_for_iri(5.0))
    elevation = smooth.elevation_m.copy()
    middle = slice(2000, 4000)
    elevation[middle] += rough.elevation_m[middle] - rough.elevation_m[2000]
    intervals = compute_iri_intervals(elevation, 0.05, interval_m=100.0)
    assert intervals.size == 3
    assert int(np.argmax(intervals)) == 1
    assert intervals[1] > 3 * max(intervals[0], intervals[2])


def test_condition_classes_use_the_thresholds() -> None:
    assert [classify_condition(v) for v in (1.2, 1.5, 2.68, 2.7)] == [
        "good",
        "fair",
        "fair",
        "poor",
    ]
    assert classify_condition(2.0, good_below=2.5) == "good"


@pytest.mark.parametrize(
    "elevation", [np.zeros(100), np.array([0.0] * 500 + [np.nan] + [0.0] * 500)]
)
def test_unusable_profiles_are_refused(elevation: np.ndarray) -> None:
    with pytest.raises(ProfileInputError):
        compute_iri(elevation, 0.05)
