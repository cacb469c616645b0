"""The hand-made features of many windows at once are each window's own, to the bit."""

from pathlib import Path

import numpy as np
import pytest

from services.roadhealth.analytics.anomaly import compute_feature_matrix
from services.roadhealth.analytics.dataset import read_window_folder
from services.roadhealth.analytics.feature_rows import compute_feature_rows
from services.roadhealth.analytics.features import (
    FEATURE_NAMES,
    WindowError,
    compute_window_features,
)
from services.roadhealth.analytics.synthetic import SURFACE_CLASSES

REAL = Path("/work/shared/data/road/gonzalez2017")


def _windows() -> list[np.ndarray]:
    """Quiet, rough, skewed, constant, stepped and spiked windows of many lengths (several of
    each, so lengths are stacked), and the real Gonzalez windows where present."""
    rng = np.random.default_rng(11)
    sizes = (16, 17, 26, 31, 32, 33, 50, 64, 99, 100, 101, 128, 250, 300)
    windows = [
        9.81 + rng.normal(0.0, scale, size)
        for size in sizes
        for scale in (0.02, 0.5, 3.0, 0.5 * 10 ** rng.uniform(-2, 1))
    ]
    windows += [9.81 + rng.gamma(2.0, 0.5, size) for size in sizes]
    windows += [np.full(50, 9.81), np.full(100, 9.81), np.r_[np.full(50, 9.81), np.full(50, 12.0)]]
    spiked = 9.81 + rng.normal(0.0, 0.3, (6, 100))
    spiked[np.arange(6), rng.integers(0, 100, 6)] += rng.choice([-8.0, 8.0], 6)
    windows += list(spiked)
    if REAL.is_dir():
        real, _labels = read_window_folder(REAL, known_classes=SURFACE_CLASSES)
        windows += real
    return windows


@pytest.mark.parametrize("rate_hz", [50.0, 64.0, 100.0])
def test_the_rows_of_a_batch_are_each_window_s_features_bit_for_bit(rate_hz: float) -> None:
    windows = _windows()
    expected = np.array([compute_window_features(w, rate_hz=rate_hz) for w in windows])
    got = compute_feature_rows(windows, rate_hz=rate_hz)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=True)
    # in any batch: a window alone, or with one other of its length, gives its row
    for i in (0, 57, len(windows) - 1):
        for batch in ([windows[i]], [windows[i], windows[i][::-1]]):
            got_i = compute_feature_rows(batch, rate_hz=rate_hz)[0]
            assert np.array_equal(got_i, expected[i], equal_nan=True)


def test_a_batch_refuses_its_first_unusable_window_as_one_at_a_time_would() -> None:
    good = 9.81 + np.random.default_rng(3).normal(0.0, 0.5, 50)
    with pytest.raises(WindowError, match="got 15"):
        compute_feature_rows([good, good[:15], np.r_[good[:20], np.nan]], rate_hz=50.0)
    with pytest.raises(WindowError, match="got 21"):
        compute_feature_rows([good, np.r_[good[:20], np.inf]], rate_hz=50.0)
    assert compute_feature_matrix([], rate_hz=50.0).shape == (0, 58)


@pytest.mark.parametrize("scale", [1e-100, 1e-60, 1e60, 1e76, 1e77, 1e150, 1e170])
def test_huge_readings_give_the_same_row_batched_or_alone_and_never_raise(scale: float) -> None:
    # The wire refuses readings beyond 16 g, but windows also come from files (training): a
    # power of the variance past the float range raised OverflowError, or underflowed to zero
    # and raised ZeroDivisionError. Both paths now answer alike, the shape where the moments
    # are in range, inf or NaN where they are not
    ordinary = np.random.default_rng(5).normal(0.0, 1.0, 100) ** 3
    skew, kurt = FEATURE_NAMES.index("skew"), FEATURE_NAMES.index("kurtosis")
    with np.errstate(over="ignore", invalid="ignore"):
        one = compute_window_features(ordinary * scale, rate_hz=50.0)
        rows = compute_feature_rows([ordinary * scale, ordinary], rate_hz=50.0)
    assert np.array_equal(rows[0], one, equal_nan=True)
    if 1e-60 <= scale <= 1e60:
        base = compute_window_features(ordinary, rate_hz=50.0)
        assert one[skew] == pytest.approx(base[skew], rel=1e-9)
        assert one[kurt] == pytest.approx(base[kurt], rel=1e-9)
