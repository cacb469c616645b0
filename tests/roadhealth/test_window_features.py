"""The classifier's hand-made window features computed in plain numpy equal scipy's answers."""

import numpy as np
import pytest
from scipy import signal, stats

from services.roadhealth.analytics.features import (
    FEATURE_NAMES,
    compute_window_features,
    welch_psd,
)


@pytest.mark.parametrize("rate_hz", [50.0, 100.0])
@pytest.mark.parametrize("size", [16, 31, 32, 33, 100, 101, 250])
def test_welch_matches_scipy(size: int, rate_hz: float) -> None:
    x = np.random.default_rng(size).normal(0.0, 1.3, size)
    nperseg = min(round(32 * rate_hz / 50.0), size)
    freq, psd = welch_psd(x, rate_hz=rate_hz, nperseg=nperseg)
    expected_freq, expected_psd = signal.welch(x, fs=rate_hz, nperseg=nperseg)
    assert np.allclose(freq, expected_freq)
    assert np.allclose(psd, expected_psd, rtol=1e-10, atol=0.0)


def test_skewness_and_kurtosis_are_scipys() -> None:
    rng = np.random.default_rng(5)
    skew, kurt = FEATURE_NAMES.index("skew"), FEATURE_NAMES.index("kurtosis")
    for size in (16, 100, 300):
        window = 9.81 + rng.gamma(2.0, 0.5, size)  # skewed, heavy-tailed
        features = compute_window_features(window, rate_hz=50.0)
        dev = window - np.median(window)
        assert features[skew] == pytest.approx(float(stats.skew(dev)), rel=1e-9)
        assert features[kurt] == pytest.approx(float(stats.kurtosis(dev)), rel=1e-9)
    # a window without any variation has no shape, as scipy says (not a crash, not a number)
    flat = compute_window_features(np.full(50, 9.81), rate_hz=50.0)
    assert np.isnan(flat[skew]) and np.isnan(flat[kurt])
