"""Random convolution kernel features (the ROCKET idea) against a direct convolution oracle."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from services.roadhealth.analytics import kernels as module
from services.roadhealth.analytics.dataset import read_window_folder
from services.roadhealth.analytics.ensemble import EnsembleClassifier
from services.roadhealth.analytics.kernels import (
    KERNEL_LENGTHS,
    KernelError,
    RandomKernels,
    draw_kernels,
    kernel_features,
)
from services.roadhealth.analytics.routed_gate import RoutedGate
from services.roadhealth.analytics.synthetic import SURFACE_CLASSES
from services.roadhealth.assessment.windows import default_classifier


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


def _added_bias_first(kernels: RandomKernels, windows: list[np.ndarray]) -> np.ndarray:
    """kernel_features as written before the bias moved to the answers: every output biased,
    then counted above zero and maximised (the same convolution, kernels._batch_features)."""
    half_taps = module.MAX_KERNEL_LENGTH // 2
    margin = half_taps * int(kernels.dilation.max()) + 1
    data, sizes = module._centred_matrix(windows, margin)
    width = int(sizes.max())
    invalid, counts = kernels.valid_masks(tuple(sizes.tolist()))
    order = kernels.order
    conv = np.empty((len(windows), order.size, width))
    shifted = np.lib.stride_tricks.sliding_window_view(data, width, axis=1)
    at = 0
    for step, members, weights, _spans in kernels.groups:
        first = margin - half_taps * step
        taps = shifted[:, first : first + 2 * half_taps * step + 1 : step]
        np.matmul(weights, taps, out=conv[:, at : at + members.size])
        at += members.size
    conv += kernels.bias[order][None, :, None]
    np.copyto(conv, -np.inf, where=invalid)
    out = np.empty((len(windows), kernels.n_features))
    out[:, 2 * order] = np.count_nonzero(conv > 0, axis=2) / counts
    out[:, 2 * order + 1] = conv.max(axis=2)
    return out


REAL = Path("/work/shared/data/road/gonzalez2017")


def test_the_live_gate_s_kernel_features_are_what_they_were_bit_for_bit() -> None:
    # The live gate's kernels on simulated pieces of its size and others, quiet and rough
    # (outputs near zero and far from it), and on the real Gonzalez windows where present
    gate = default_classifier()
    gate = gate.whole if isinstance(gate, RoutedGate) else gate  # its short model: same kernels
    assert isinstance(gate, EnsembleClassifier)
    rng = np.random.default_rng(7)
    windows = [9.81 + rng.normal(0, s, n) for s in (0.02, 0.5, 3.0) for n in (100, 37, 250)]
    windows += [np.full(100, 9.81), np.r_[np.full(50, 9.81), np.full(50, 12.0)]]
    if REAL.is_dir():
        real, _labels = read_window_folder(REAL, known_classes=SURFACE_CLASSES)
        windows += real
    controller = ThreadpoolController()
    for kernels in (gate.kernels, draw_kernels(300, seed=3, max_span=250)):
        for start in range(0, len(windows), 64):
            part = windows[start : start + 64]
            # the matrix products as kernel_features runs them, on one thread
            with controller.limit(limits=1, user_api="blas"):
                before = _added_bias_first(kernels, part)
            assert np.array_equal(kernel_features(kernels, part), before, equal_nan=True)


@pytest.mark.parametrize("caller_threads", [1, 2, 4])
def test_a_window_s_features_do_not_depend_on_the_caller_s_blas_threads(
    caller_threads: int,
) -> None:
    # A replica on a machine with another core count must judge a piece alike: the features
    # are the same to the bit whatever BLAS thread team the calling process runs with
    gate = default_classifier()
    gate = gate.whole if isinstance(gate, RoutedGate) else gate
    assert isinstance(gate, EnsembleClassifier)
    rng = np.random.default_rng(11)
    windows = [9.81 + rng.normal(0, s, n) for s in (0.05, 0.8, 4.0) for n in (50, 100, 400)]
    if REAL.is_dir():
        windows += read_window_folder(REAL, known_classes=SURFACE_CLASSES)[0][:64]
    controller = ThreadpoolController()
    with controller.limit(limits=1, user_api="blas"):
        reference = kernel_features(gate.kernels, windows)
    with controller.limit(limits=caller_threads, user_api="blas"):
        features = kernel_features(gate.kernels, windows)
        # and the caller's own setting is given back afterwards
        after = {lib["internal_api"]: lib["num_threads"] for lib in controller.info()}
    assert np.array_equal(features, reference)
    assert all(n == caller_threads for api, n in after.items() if api == "openblas")


def test_the_service_s_request_threads_compute_on_one_blas_thread() -> None:
    # The road-health service computes features on its request threads: the limit it sets at
    # start-up (here from a worker thread, as an embedding app might) holds for every thread,
    # and importing the analytics alone changes nothing
    script = """
import threading
import numpy
from threadpoolctl import ThreadpoolController
def blas():
    return min(i["num_threads"] for i in ThreadpoolController().info() if i["user_api"] == "blas")
from services.roadhealth.analytics.kernels import limit_process_blas
imported = blas()
worker = threading.Thread(target=limit_process_blas)
worker.start()
worker.join()
seen = []
worker = threading.Thread(target=lambda: seen.append(blas()))
worker.start()
worker.join()
limit_process_blas()  # again, from the main thread: no second limit stacked
print(imported, seen[0], blas())
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}  # OpenBLAS caps it at the cores
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert run.stdout.split() == [str(min(2, os.cpu_count() or 1)), "1", "1"]


def test_nested_limits_restore_the_caller_s_setting_only_when_the_last_leaves() -> None:
    controller = ThreadpoolController()

    def blas_threads() -> int:
        return min(lib["num_threads"] for lib in controller.info() if lib["user_api"] == "blas")

    one = module._OneBlasThread()
    with controller.limit(limits=2, user_api="blas"):
        one.__enter__()
        one.__enter__()  # a second call overlapping the first
        one.__exit__()
        assert blas_threads() == 1  # the first out does not give 2 back under the second
        one.__exit__()
        assert blas_threads() == 2
