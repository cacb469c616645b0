"""Group pothole reports along a segment into potholes by where their positions pile up.

Each report's chainage is uncertain by the GPS error of its window's start (a few metres along
the road), so reports of one pothole scatter around it. A Gaussian kernel density of the
reports' chainages, with the position uncertainty as bandwidth, has one mode per pothole; the
reports between two density minima belong to the mode between them. Two potholes make two modes
when they lie more than about 2 * sqrt(2) bandwidths apart (two Gaussians of spread sigma
smoothed by a kernel of width sigma stay bimodal beyond 2 * sqrt(2) sigma); closer ones are one
pothole to this method, which is what a repair crew sent there would find anyway.

On a grid of `GRID_M` steps the density costs O(length / GRID_M + reports), so re-clustering a
segment on every batch stays cheap however many reports it has gathered.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
GRID_M = 0.25
KERNEL_HALF_WIDTH_SIGMAS = 4.0
BANDWIDTH_SIGMAS = 0.8  # kernel width per sigma: narrower resolves more, splits more
MERGE_Z = 4.0
MIN_MODE_REPORTS = 0.5  # a mode must carry at least half a report's peak density


class ClusteringError(AnalyticsError):
    """Inputs the clustering cannot use (no bandwidth, positions not finite)."""


def resolvable_separation_m(sigma_m: float) -> float:
    """Closest two potholes can be and still show two density modes (many reports of each)."""
    return 2.0 * float(np.sqrt(1.0 + BANDWIDTH_SIGMAS**2)) * sigma_m


def cluster_positions(positions_m: Sequence[float], *, sigma_m: float) -> list[int]:
    """Cluster label of each position (0, 1, ... in order along the road).

    `sigma_m` is one report's position uncertainty (standard deviation along the road).
    """
    x = np.asarray(positions_m, dtype=np.float64)
    # Verify the inputs make a density
    if sigma_m <= 0 or not np.isfinite(sigma_m):
        raise ClusteringError(f"sigma must be a positive number of metres, got {sigma_m}")
    if not np.all(np.isfinite(x)):
        raise ClusteringError("positions must be finite")
    if x.size == 0:
        return []
    grid, density = _density(x, BANDWIDTH_SIGMAS * sigma_m)
    labels = np.searchsorted(_valleys(grid, density), x)
    return _merge_indistinct(x, labels, sigma_m)


def _merge_indistinct(x: FloatArray, labels: NDArray[np.int64], sigma_m: float) -> list[int]:
    """Join neighbouring clusters whose means differ by less than chance would explain.

    A few reports of one pothole can show two small modes; their means then differ by less
    than MERGE_Z standard errors, sigma * sqrt(1/n1 + 1/n2), while two potholes' do not.
    """
    groups = [x[labels == k] for k in range(int(labels.max()) + 1)]
    groups = [g for g in groups if g.size]
    merged = [groups[0]]
    for group in groups[1:]:
        last = merged[-1]
        stderr = sigma_m * np.sqrt(1.0 / last.size + 1.0 / group.size)
        if abs(float(group.mean()) - float(last.mean())) < MERGE_Z * stderr:
            merged[-1] = np.concatenate([last, group])
        else:
            merged.append(group)
    tops = np.array([float(g.max()) for g in merged[:-1]])
    return [int(v) for v in np.searchsorted(tops, x, side="left")]


def _density(x: FloatArray, bandwidth_m: float) -> tuple[FloatArray, FloatArray]:
    """Kernel density (in reports at a report's own peak) on a grid spanning the reports."""
    pad = KERNEL_HALF_WIDTH_SIGMAS * bandwidth_m
    lo = float(x.min()) - pad
    size = int(np.ceil((float(x.max()) + pad - lo) / GRID_M)) + 1
    grid = lo + GRID_M * np.arange(size)
    counts = np.bincount(
        np.clip(np.rint((x - lo) / GRID_M).astype(int), 0, size - 1), minlength=size
    )
    half = int(np.ceil(pad / GRID_M))
    offsets = GRID_M * np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets / bandwidth_m) ** 2)
    density = np.convolve(counts.astype(np.float64), kernel, mode="same")
    return np.asarray(grid, dtype=np.float64), np.asarray(density, dtype=np.float64)


def _valleys(grid: FloatArray, density: FloatArray) -> FloatArray:
    """Positions of the density minima between consecutive modes, in order along the road."""
    inner = density[1:-1]
    # A plateau counts once: rising into it and not rising out of it
    peaks = np.flatnonzero((inner > density[:-2]) & (inner >= density[2:])) + 1
    peaks = peaks[density[peaks] >= MIN_MODE_REPORTS]
    bounds = [grid[a + int(np.argmin(density[a : b + 1]))] for a, b in itertools.pairwise(peaks)]
    return np.asarray(bounds, dtype=np.float64)
