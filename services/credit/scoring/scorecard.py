"""Logistic scorecard on weight-of-evidence bins: the explainable model and its contributions.

Each feature is cut at training quantiles into up to `n_bins` bins plus a bin for missing
values; each bin is replaced by its weight of evidence ln(bad share / good share), smoothed, so a
positive value means riskier than average and outliers cannot dominate. A logistic regression
on those values gives per-feature log-odds contributions `coef * woe`, which become reason codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from services.credit.scoring.impute import RareMissingImputer

FloatArray = npt.NDArray[np.float64]
SMOOTHING = 0.5


class WoeBinner(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Replace each value by the smoothed weight of evidence of its quantile bin (or NaN bin)."""

    def __init__(self, n_bins: int = 10) -> None:
        self.n_bins = n_bins

    def fit(self, X: Any, y: Any) -> WoeBinner:
        """Learn bin edges and the weight of evidence of every bin."""
        values = np.asarray(X, dtype=np.float64)
        target = np.asarray(y, dtype=np.int_)
        self.edges_: list[FloatArray] = []
        self.woe_: list[FloatArray] = []
        for column in values.T:
            edges = _quantile_edges(column, self.n_bins)
            bins = _bin_index(column, edges)
            self.edges_.append(edges)
            self.woe_.append(_weights_of_evidence(bins, target, len(edges) + 2))
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, X: Any) -> FloatArray:
        """Return the weight of evidence of each value's bin."""
        values = np.asarray(X, dtype=np.float64)
        out = np.empty_like(values)
        for j, (edges, woe) in enumerate(zip(self.edges_, self.woe_, strict=True)):
            out[:, j] = woe[_bin_index(values[:, j], edges)]
        return out


def _quantile_edges(column: FloatArray, n_bins: int) -> FloatArray:
    present = column[~np.isnan(column)]
    if present.size == 0:
        return np.empty(0)
    inner = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(inner)


def _bin_index(column: FloatArray, edges: FloatArray) -> npt.NDArray[np.intp]:
    """Bins 0..len(edges) for values, len(edges) + 1 for missing."""
    index = np.searchsorted(edges, column, side="right")
    return np.where(np.isnan(column), len(edges) + 1, index)


def _weights_of_evidence(bins: npt.NDArray[np.intp], y: npt.NDArray[np.int_], n: int) -> FloatArray:
    bad = np.bincount(bins, weights=y, minlength=n)
    total = np.bincount(bins, minlength=n).astype(np.float64)
    good = total - bad
    bad_share = (bad + SMOOTHING) / (bad.sum() + SMOOTHING * n)
    good_share = (good + SMOOTHING) / (good.sum() + SMOOTHING * n)
    return np.asarray(np.log(bad_share / good_share), dtype=np.float64)


def make_scorecard(*, seed: int, n_bins: int = 10, c: float = 0.05) -> Pipeline:
    """Return an unfitted WOE-binning + L2 logistic regression pipeline."""
    return Pipeline(
        [
            ("impute", RareMissingImputer()),
            ("woe", WoeBinner(n_bins=n_bins)),
            ("logit", LogisticRegression(C=c, max_iter=2000, random_state=seed)),
        ]
    )


def contributions(scorecard: Pipeline, X: Any) -> FloatArray:
    """Return each feature's log-odds contribution to default for each row (rows x features)."""
    woe = scorecard[:-1].transform(X)
    coef = scorecard.named_steps["logit"].coef_[0]
    return np.asarray(woe * coef, dtype=np.float64)
