"""Pothole reports grouped by where they pile up along a segment, given GPS jitter."""

from __future__ import annotations

import numpy as np
import pytest

from services.roadhealth.assessment.clustering import (
    ClusteringError,
    cluster_positions,
    resolvable_separation_m,
)

SIGMA_M = 3.0


def test_reports_of_one_pothole_scattered_by_gps_jitter_stay_one_pothole() -> None:
    rng = np.random.default_rng(3)
    whole = sum(
        len(set(cluster_positions(rng.normal(120.0, SIGMA_M, n).tolist(), sigma_m=SIGMA_M))) == 1
        for n in (3, 6, 12)
        for _ in range(100)
    )
    assert whole >= 297  # at most 1% of potholes split in two


def test_reports_6_to_7_m_apart_are_one_pothole() -> None:
    labels = cluster_positions([211.2, 217.5, 213.0, 216.1, 212.4, 218.0], sigma_m=SIGMA_M)
    assert labels == [0] * 6


def test_potholes_20_m_apart_are_two_each_with_its_own_reports() -> None:
    rng = np.random.default_rng(5)
    right = 0
    for _ in range(100):
        x = np.r_[rng.normal(50.0, SIGMA_M, 6), rng.normal(70.0, SIGMA_M, 6)]
        right += cluster_positions(x, sigma_m=SIGMA_M) == [0] * 6 + [1] * 6
    assert right >= 95


def test_labels_run_along_the_road_and_far_apart_reports_are_separate() -> None:
    assert cluster_positions([300.0, 10.0, 11.0, 150.0], sigma_m=SIGMA_M) == [2, 0, 0, 1]
    assert cluster_positions([], sigma_m=SIGMA_M) == []
    assert resolvable_separation_m(SIGMA_M) == pytest.approx(7.68, abs=0.01)


@pytest.mark.parametrize(
    ("positions", "sigma", "message"),
    [
        ([1.0], 0.0, "sigma must be a positive"),
        ([1.0], float("nan"), "sigma must be a positive"),
        ([1.0, float("inf")], 3.0, "positions must be finite"),
    ],
)
def test_bad_inputs_are_refused(positions: list[float], sigma: float, message: str) -> None:
    with pytest.raises(ClusteringError, match=message):
        cluster_positions(positions, sigma_m=sigma)
