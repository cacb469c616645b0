"""Median imputation of features that are rarely missing in training.

In the Polish data a few ratios are missing in a handful of rows, nearly all bankrupt (Attr11:
18 rows, 89% bad), so a model learns "missing means default". For an SME, a missing ratio mostly
means an input was not reported; filling such features with the training median keeps that
artefact out of both models. Features missing often enough to carry meaning (e.g. sales growth
without a previous year) keep their missing values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin

FloatArray = npt.NDArray[np.float64]


class RareMissingImputer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Fill features missing in less than `max_missing_share` of training rows with the median."""

    def __init__(self, max_missing_share: float = 0.01) -> None:
        self.max_missing_share = max_missing_share

    def fit(self, X: Any, y: Any = None) -> RareMissingImputer:
        """Learn which features to fill and their training medians."""
        values = np.asarray(X, dtype=np.float64)
        share = np.isnan(values).mean(axis=0)
        self.filled_ = np.flatnonzero(share < self.max_missing_share)
        present = np.where(np.isnan(values[:, self.filled_]), np.nan, values[:, self.filled_])
        with np.errstate(all="ignore"):
            medians = np.nanmedian(present, axis=0) if present.size else np.empty(0)
        self.medians_ = np.nan_to_num(medians, nan=0.0)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, X: Any) -> FloatArray:
        """Return a copy with the rarely-missing features filled."""
        values = np.array(X, dtype=np.float64, copy=True)
        block = values[:, self.filled_]
        values[:, self.filled_] = np.where(np.isnan(block), self.medians_, block)
        return values
