"""Population stability index (PSI) of scores and features between a baseline and a new period.

PSI = sum over bins of (actual% - expected%) * ln(actual% / expected%), with bins at the
baseline's deciles plus one bin for missing values. Usual reading: up to 0.1 stable (ok),
above 0.1 some shift (watch), above 0.25 significant shift (act: review or retrain the model).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.credit.errors import DriftError

WATCH_THRESHOLD = 0.1
ACT_THRESHOLD = 0.25
SHARE_FLOOR = 1e-4  # keeps empty bins from making the index infinite
Status = Literal["ok", "watch", "act"]


@dataclass(frozen=True)
class DriftResult:
    """Stability of one variable between the baseline and the current population."""

    name: str
    psi: float
    status: Status
    n_baseline: int
    n_current: int


def drift_status(psi: float) -> Status:
    """Return ok, watch (> 0.1) or act (> 0.25)."""
    if psi > ACT_THRESHOLD:
        return "act"
    if psi > WATCH_THRESHOLD:
        return "watch"
    return "ok"


def population_stability(
    expected: Iterable[float], actual: Iterable[float], *, bins: int = 10
) -> float:
    """Return the PSI of `actual` against the `expected` (baseline) distribution."""
    base = np.asarray(list(expected), dtype=np.float64)
    current = np.asarray(list(actual), dtype=np.float64)
    # Verify both populations are non-empty
    if base.size == 0 or current.size == 0:
        raise DriftError("PSI needs a non-empty baseline and current population")
    edges = _edges(base, bins)
    e = _shares(base, edges)
    a = _shares(current, edges)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_report(
    baseline: pd.DataFrame, current: pd.DataFrame, *, columns: Iterable[str] | None = None
) -> list[DriftResult]:
    """Return the PSI and status of each column (e.g. score and key ratios) in both frames."""
    names = list(columns) if columns is not None else [c for c in baseline.columns if c in current]
    missing = [n for n in names if n not in baseline.columns or n not in current.columns]
    if missing:
        raise DriftError(f"column(s) not in both populations: {', '.join(missing)}")
    results = []
    for name in names:
        psi = population_stability(baseline[name], current[name])
        results.append(
            DriftResult(name, round(psi, 6), drift_status(psi), len(baseline), len(current))
        )
    return results


def _edges(base: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    present = base[~np.isnan(base)]
    if present.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))


def _shares(
    values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    index = np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values, side="right"))
    counts = np.bincount(index, minlength=len(edges) + 2).astype(np.float64)
    return np.asarray(np.maximum(counts / counts.sum(), SHARE_FLOOR), dtype=np.float64)
