"""Random convolution kernel features (the ROCKET idea) against a direct convolution oracle."""

import numpy as np
import pytest

from services.roadhealth.analytics.kernels import (
    KERNEL_LENGTHS,
    KernelError,
    RandomKernels,
    draw_kernels,
    kernel_features,
)


def _one_kernel(weights: list[float], bias: float, dilation: int, padded: bool) -> RandomKernels:
    row = np.zeros((1, 11))
    row[0, : len(weights)] = weights
    return RandomKernels(
        0,
        np.array([len(weights)]),
        row,
        np.array([bias]),
        np.array([dilation]),
        np.array([padded]),
    )


def _oracle(window: np.ndarray, kernel: RandomKernels, padded: bool) -> tuple[float, float]:
    """Proportion of positive outputs and maximum, by np.convolve on the dilated kernel."""
    length, step = int(kernel.lengths[0]), int(kernel.dilation[0])
    dilated = np.zeros((length - 1) * step + 1)
    dilated[::step] = kernel.weights[0, :length]
    dev = window - np.median(window)
    span = dilated.size - 1
    if padded or span >= dev.size:
        dev = np.concatenate([np.zeros(span // 2), dev, np.zeros(span - span // 2)])
    out = np.convolve(dev, dilated[::-1], mode="valid") + kernel.bias[0]
    return float(np.mean(out > 0)), float(out.max())


def test_kernels_are_reproducible_from_their_seed_and_within_their_span() -> None:
    one, again, other = (draw_kernels(300, seed=s, max_span=250) for s in (4, 4, 5))
    assert np.array_equal(one.weights, again.weights) and np.array_equal(one.bias, again.bias)
    assert np.array_equal(one.dilation, again.dilation)
    assert not np.array_equal(one.weights, other.weights)
    assert set(one.lengths.tolist()) == set(KERNEL_LENGTHS)
    assert ((one.lengths - 1) * one.dilation).max() <= 250 and one.dilation.max() > 10
    assert np.allclose(one.weights.sum(axis=1), 0.0, atol=1e-5)
    assert one.n_features == 600


@pytest.mark.parametrize(("padded", "dilation"), [(True, 3), (False, 3), (False, 20)])
def test_features_match_a_direct_convolution(padded: bool, dilation: int) -> None:
    window = np.random.default_rng(1).normal(9.8, 1.5, 120)
    kernel = _one_kernel([1.0, -2.0, 0.5, 0.0, 0.5, -1.0, 1.0], 0.3, dilation, padded)
    ppv, top = kernel_features(kernel, [window])[0]
    # dilation 20 spans 120 samples: a window no longer than that falls back to padding
    expected = _oracle(window, kernel, padded)
    assert ppv == pytest.approx(expected[0]) and top == pytest.approx(expected[1])


def test_a_window_gets_the_same_features_alone_or_in_any_batch() -> None:
    rng = np.random.default_rng(2)
    windows = [rng.normal(9.8, 1.0, int(n)) for n in rng.integers(60, 380, 70)]
    kernels = draw_kernels(200, seed=0, max_span=250)
    together = kernel_features(kernels, windows)  # more windows than one batch
    assert np.allclose(together[5], kernel_features(kernels, [windows[5]])[0])
    assert np.allclose(together[69], kernel_features(kernels, windows[60:])[9])
    # the device's gravity offset does not matter: windows are centred on their median
    assert np.allclose(together[:3], kernel_features(kernels, [w + 0.7 for w in windows[:3]]))


def _nth(kernels: RandomKernels, k: int) -> RandomKernels:
    return RandomKernels(
        0,
        kernels.lengths[k : k + 1],
        kernels.weights[k : k + 1],
        kernels.bias[k : k + 1],
        kernels.dilation[k : k + 1],
        kernels.padded[k : k + 1],
    )


def test_kernels_of_every_length_sharing_a_dilation_each_match_a_direct_convolution() -> None:
    # One matrix product per dilation centres the 7- and 9-tap kernels in 11 taps: each
    # kernel's features must still be its own convolution's, in windows of mixed lengths
    # (some shorter than a kernel's span) and again for pieces of one length (cached masks)
    kernels = draw_kernels(60, seed=3, max_span=40)
    pairs = set(zip(kernels.lengths.tolist(), kernels.dilation.tolist(), strict=True))
    assert len(pairs) > len(set(kernels.dilation.tolist()))
    rng = np.random.default_rng(4)
    for sizes in ([100, 23, 57, 100, 16], [100, 100, 100]):
        windows = [rng.normal(9.8, 1.2, n) for n in sizes]
        features = kernel_features(kernels, windows)
        for w, window in enumerate(windows):
            for k in range(kernels.lengths.size):
                ppv, top = _oracle(window, _nth(kernels, k), bool(kernels.padded[k]))
                assert features[w, 2 * k] == pytest.approx(ppv), (sizes, w, k)
                assert features[w, 2 * k + 1] == pytest.approx(top), (sizes, w, k)


def test_inconsistent_kernel_parameters_are_refused() -> None:
    good = draw_kernels(5, seed=0, max_span=100)
    with pytest.raises(KernelError, match="mismatched"):
        RandomKernels(
            0, good.lengths, good.weights[:3], good.bias, good.dilation, good.padded
        ).validate()
    with pytest.raises(KernelError, match="7, 9 or 11"):
        RandomKernels(
            0, good.lengths * 0 + 5, good.weights, good.bias, good.dilation, good.padded
        ).validate()
    with pytest.raises(KernelError, match="finite"):
        RandomKernels(
            0, good.lengths, good.weights, good.bias * np.nan, good.dilation, good.padded
        ).validate()
    good.validate()
