"""Random convolution kernel features of a window (the ROCKET idea, Dempster et al. 2020).

Many random 1-D kernels (lengths 7, 9 or 11, zero-mean normal weights, a bias, a dilation and
with or without zero padding) slide over the median-centred window; each kernel gives two
features, the proportion of its outputs above zero and its largest output. A linear model on
them learns which shapes and scales matter. The kernels are drawn once from a seed and their
parameters are stored with the model, so a model file does not depend on numpy's generator.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
KERNEL_LENGTHS = (7, 9, 11)
MAX_KERNEL_LENGTH = max(KERNEL_LENGTHS)
BATCH_WINDOWS = 64
CONV_BUDGET = 4_000_000  # outputs of one batch's convolutions (32 MB)
MASK_CACHE_SIZE = 8
# The convolutions' matrix products run on one BLAS thread. OpenBLAS splits a product's output
# among its threads and its edge blocks round differently, so with its default team a window's
# features changed in the last bit with the caller's thread count (seen on this AMD EPYC: 1
# thread against 2, 4, 8), and a replica on another machine could judge a borderline piece
# otherwise. One thread also costs less CPU on a busy machine: 134 against 684 ms for 64
# windows of 400 samples and 1,000 kernels, under load 7 (the threads spin waiting for a core).
#
# The limit is process-wide (threadpoolctl sets OpenBLAS's global thread count), whichever
# thread sets it: measured here with threadpoolctl 3 and OpenBLAS 0.3.31, a 1,500² product in a
# worker thread used 1.98 cores' CPU per wall second with no limit and 1.00-1.01 with the limit
# set from the main thread or from a worker thread. Each call holds the limit while it computes
# (refcounted, so overlapping calls on the service's request threads do not restore each
# other's team), but between calls the process would go back to its team, and other BLAS work
# on a busy service would spin threads again: so the service puts its process on one BLAS
# thread for good at start-up (limit_process_blas).
_THREADS = ThreadpoolController()
_PROCESS_LIMIT: list[object] = []  # the process-wide limit, once set
_PROCESS_LIMIT_LOCK = threading.Lock()


def limit_process_blas() -> None:
    """Put the whole process on one BLAS thread for good, as a service that computes kernel
    features on several request threads must (other BLAS work in the process then runs on one
    thread too). Idempotent; any thread may call it."""
    with _PROCESS_LIMIT_LOCK:
        if not _PROCESS_LIMIT:
            _PROCESS_LIMIT.append(_THREADS.limit(limits=1, user_api="blas"))


class _OneBlasThread:
    """Holds BLAS at one thread while any kernel_features call is inside; the first call in
    sets the limit and the last one out restores what was there before, so overlapping calls
    cannot give the old count back while another still computes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._limiter: object | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._limiter = _THREADS.limit(limits=1, user_api="blas")
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._limiter is not None:
                self._limiter.restore_original_limits()  # type: ignore[attr-defined]
                self._limiter = None


_ONE_BLAS_THREAD = _OneBlasThread()


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
    def groups(self) -> tuple[tuple[int, IntArray, FloatArray, IntArray], ...]:
        """(dilation, kernel indices, their weights centred in MAX_KERNEL_LENGTH taps, their
        spans) of the kernels that convolve together: one matrix product per dilation (a
        kernel of odd length is centred in the longest one's taps, zeros round it), worked out
        once per model."""
        out = []
        for step in np.unique(self.dilation).tolist():
            members = np.flatnonzero(self.dilation == step)
            centred = np.zeros((members.size, MAX_KERNEL_LENGTH))
            for row, k in enumerate(members.tolist()):
                length = int(self.lengths[k])
                first = (MAX_KERNEL_LENGTH - length) // 2
                centred[row, first : first + length] = self.weights[k, :length]
            out.append((int(step), members, centred, (self.lengths[members] - 1) * step))
        return tuple(out)

    @cached_property
    def order(self) -> IntArray:
        """Kernel indices group after group: the order their outputs are worked out in."""
        return np.concatenate([members for _step, members, _weights, _spans in self.groups])

    @cached_property
    def _masks(self) -> dict[tuple[int, ...], tuple[NDArray[np.bool_], IntArray]]:
        return {}

    def valid_masks(self, sizes: tuple[int, ...]) -> tuple[NDArray[np.bool_], IntArray]:
        """Where each kernel's outputs do not count (windows x kernels in `order` x positions)
        and how many do, for windows of these sizes; kept for the last few size lists (the
        live gate judges 2 s pieces: one size)."""
        key = sizes if len(set(sizes)) > 1 else sizes[:1]
        if key not in self._masks:
            if len(self._masks) >= MASK_CACHE_SIZE:
                self._masks.pop(next(iter(self._masks)))
            spans = np.concatenate([spans for _step, _members, _weights, spans in self.groups])
            valid = _valid_outputs(np.array(key, dtype=np.int64), spans, self.padded[self.order])
            self._masks[key] = (~valid, valid.sum(axis=2))
        return self._masks[key]

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
    if not windows:
        return out
    longest = max(w.size for w in windows)
    batch = max(1, min(BATCH_WINDOWS, CONV_BUDGET // (kernels.lengths.size * longest)))
    with _ONE_BLAS_THREAD:
        for start in range(0, len(windows), batch):
            out[start : start + batch] = _batch_features(kernels, windows[start : start + batch])
    return out


def _batch_features(kernels: RandomKernels, windows: Sequence[FloatArray]) -> FloatArray:
    """kernel_features of a few windows: the kernels of one dilation convolve at once, as one
    matrix product over a view of the windows' shifts (no copies of the taps), into one array
    of every kernel's outputs that is then reduced in a few whole-array steps."""
    half_taps = MAX_KERNEL_LENGTH // 2
    margin = half_taps * int(kernels.dilation.max()) + 1
    data, sizes = _centred_matrix(windows, margin)
    width = int(sizes.max())
    invalid, counts = kernels.valid_masks(tuple(sizes.tolist()))
    order = kernels.order
    conv = np.empty((len(windows), order.size, width))  # windows x kernels (in order) x positions
    # shifted[n, s, t] = data[n, s + t]: a dilation's taps are every step-th shift (a view)
    shifted = np.lib.stride_tricks.sliding_window_view(data, width, axis=1)
    at = 0
    for step, members, weights, _spans in kernels.groups:
        first = margin - half_taps * step
        taps = shifted[:, first : first + 2 * half_taps * step + 1 : step]
        np.matmul(weights, taps, out=conv[:, at : at + members.size])
        at += members.size
    np.copyto(conv, -np.inf, where=invalid)
    # Each kernel's bias is applied to its two answers, not added to every output first (a
    # pass over the whole array, an eighth of the transform): rounding never reverses an
    # order, so max(x) + b is max(x + b), and x + b rounds to above zero exactly when x > -b
    bias = kernels.bias[order]
    out = np.empty((len(windows), kernels.n_features))
    out[:, 2 * order] = np.count_nonzero(conv > -bias[None, :, None], axis=2) / counts
    out[:, 2 * order + 1] = conv.max(axis=2) + bias
    return out


def _valid_outputs(
    sizes: IntArray, spans: IntArray, padded: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Windows x kernels x positions: where each kernel's output counts. A padded kernel's at
    every sample of the window; an unpadded one's only where it covers no padding, or at every
    sample when the window is shorter than its span."""
    position = np.arange(int(sizes.max()))[None, None, :]
    inside = position < sizes[:, None, None]
    lower = (spans // 2)[None, :, None]
    upper = sizes[:, None, None] - spans[None, :, None] + lower
    unpadded = (position >= lower) & (position < upper) & inside
    short = ~unpadded.any(axis=2, keepdims=True)
    unpadded = np.where(short, inside, unpadded)
    return np.where(padded[None, :, None], inside, unpadded)
