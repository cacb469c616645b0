"""Random convolution kernel features of a window (the ROCKET idea, Dempster et al. 2020).

Many random 1-D kernels (lengths 7, 9 or 11, zero-mean normal weights, a bias, a dilation and
with or without zero padding) slide over the median-centred window; each kernel gives two
features, the proportion of its outputs above zero and its largest output. A linear model on
them learns which shapes and scales matter. The kernels are drawn once from a seed and their
parameters are stored with the model, so a model file does not depend on numpy's generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
KERNEL_LENGTHS = (7, 9, 11)
MAX_KERNEL_LENGTH = max(KERNEL_LENGTHS)
BATCH_WINDOWS = 64  # bounds the memory of one batch's convolutions


class KernelError(AnalyticsError):
    """Kernel parameters that do not describe a usable transform."""


@dataclass(frozen=True)
class RandomKernels:
    """Parameters of n kernels: weights are zero after each kernel's own length."""

    seed: int
    lengths: IntArray
    weights: FloatArray  # n x MAX_KERNEL_LENGTH
    bias: FloatArray
    dilation: IntArray
    padded: NDArray[np.bool_]

    @property
    def n_features(self) -> int:
        return 2 * int(self.lengths.size)

    @cached_property
    def groups(self) -> tuple[tuple[int, int, IntArray], ...]:
        """(length, dilation, kernel indices) of the kernels that convolve together; worked out
        once (about a fifth of a single short window's transform)."""
        pairs = np.unique(np.stack([self.lengths, self.dilation]), axis=1)
        return tuple(
            (length, step, np.flatnonzero((self.lengths == length) & (self.dilation == step)))
            for length, step in pairs.T.tolist()
        )

    def validate(self) -> None:
        """Refuse parameters that are inconsistent (e.g. from a damaged model file)."""
        n = self.lengths.size
        shapes_ok = (
            self.weights.shape == (n, MAX_KERNEL_LENGTH)
            and self.bias.shape == (n,)
            and self.dilation.shape == (n,)
            and self.padded.shape == (n,)
        )
        if n == 0 or not shapes_ok:
            raise KernelError("kernel parameters have mismatched or empty shapes")
        if not set(self.lengths.tolist()) <= set(KERNEL_LENGTHS) or self.dilation.min() < 1:
            raise KernelError("kernel lengths must be 7, 9 or 11 and dilations at least 1")
        if not (np.all(np.isfinite(self.weights)) and np.all(np.isfinite(self.bias))):
            raise KernelError("kernel weights and biases must be finite")


def draw_kernels(n_kernels: int, *, seed: int, max_span: int) -> RandomKernels:
    """n_kernels random kernels whose dilated span reaches up to max_span samples."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice(np.array(KERNEL_LENGTHS, dtype=np.int64), n_kernels)
    weights = np.zeros((n_kernels, MAX_KERNEL_LENGTH))
    for i, length in enumerate(lengths):
        drawn = rng.normal(0.0, 1.0, int(length))
        weights[i, :length] = drawn - drawn.mean()
    bias = rng.uniform(-1.0, 1.0, n_kernels)
    # Six decimals: short in a model file, and what is stored is exactly what is used.
    weights, bias = np.round(weights, 6), np.round(bias, 6)
    # Dilations spread evenly on a log scale, so short and long shapes are equally covered.
    top = np.log2(max_span / (lengths - 1))
    dilation = np.floor(2.0 ** (rng.uniform(0.0, 1.0, n_kernels) * top)).astype(np.int64)
    padded = rng.integers(0, 2, n_kernels).astype(bool)
    return RandomKernels(seed, lengths, weights, bias, dilation, padded)


def _centred_matrix(windows: Sequence[FloatArray], margin: int) -> tuple[FloatArray, IntArray]:
    """Windows minus their medians, side by side in zero-filled rows with `margin` each side."""
    sizes = np.array([w.size for w in windows], dtype=np.int64)
    out = np.zeros((len(windows), int(sizes.max()) + 2 * margin))
    for row, window in enumerate(windows):
        out[row, margin : margin + window.size] = window - np.median(window)
    return out, sizes


def kernel_features(kernels: RandomKernels, windows: Sequence[FloatArray]) -> FloatArray:
    """Per window and kernel: proportion of positive outputs and the largest output."""
    out = np.empty((len(windows), kernels.n_features))
    for start in range(0, len(windows), BATCH_WINDOWS):
        out[start : start + BATCH_WINDOWS] = _batch_features(
            kernels, windows[start : start + BATCH_WINDOWS]
        )
    return out


def _batch_features(kernels: RandomKernels, windows: Sequence[FloatArray]) -> FloatArray:
    """kernel_features of a few windows: kernels of one length and dilation convolve at once."""
    spans = (kernels.lengths - 1) * kernels.dilation
    margin = int(spans.max()) // 2 + 1
    data, sizes = _centred_matrix(windows, margin)
    width = int(sizes.max())
    position = np.arange(width)[None, :]
    inside = position < sizes[:, None]
    out = np.empty((len(windows), kernels.n_features))
    for length, step, members in kernels.groups:
        span = (length - 1) * step
        first = margin - span // 2
        taps = np.stack(
            [data[:, first + j * step : first + j * step + width] for j in range(length)], axis=1
        )
        conv = np.einsum("kj,njt->nkt", kernels.weights[members, :length], taps)
        conv += kernels.bias[members][None, :, None]
        unpadded = inside & (position >= span // 2) & (position < sizes[:, None] - span + span // 2)
        # A window shorter than the kernel's span falls back to the padded outputs.
        short = ~unpadded.any(axis=1)
        unpadded[short] = inside[short]
        valid = np.where(
            kernels.padded[members][None, :, None], inside[:, None, :], unpadded[:, None, :]
        )
        out[:, 2 * members] = (valid & (conv > 0)).sum(axis=2) / valid.sum(axis=2)
        out[:, 2 * members + 1] = np.where(valid, conv, -np.inf).max(axis=2)
    return out
