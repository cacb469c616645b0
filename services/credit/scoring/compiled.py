"""A flattened, numpy-only predictor for the fitted credit model, for small batches.

scikit-learn's `predict_proba` on one row pays its input validation, the pipeline, the
calibration wrapper and one pass per calibrated copy; together that is most of a single rating.
`CompiledGbm` reads the fitted parts once (the rare-missing imputer's medians, each boosted tree
as padded node arrays, the sigmoid calibrator's two coefficients) and walks all trees at once,
one tree level per numpy step. It reproduces `predict_proba` to rounding (tests/credit check
1e-9); large batches still go through scikit-learn's compiled predictor, which is faster there.

Only the layout `CalibratedClassifierCV(Pipeline([RareMissingImputer,
HistGradientBoostingClassifier]), method="sigmoid")` of a binary model with numeric features is
compiled; `compile_gbm` returns None for anything else and the caller uses scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from services.credit.scoring.impute import RareMissingImputer

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class _Member:
    """One calibrated copy: imputer, trees as padded arrays, sigmoid calibrator."""

    filled: IntArray
    medians: FloatArray
    baseline: float
    feature: IntArray  # trees x nodes
    threshold: FloatArray
    left: IntArray
    right: IntArray
    missing_left: npt.NDArray[np.bool_]
    leaf: npt.NDArray[np.bool_]
    value: FloatArray
    depth: int
    a: float
    b: float

    def raw(self, values: FloatArray) -> FloatArray:
        """The booster's raw log-odds for each row."""
        X = values.copy()
        block = X[:, self.filled]
        X[:, self.filled] = np.where(np.isnan(block), self.medians, block)
        n_trees = self.feature.shape[0]
        trees = np.arange(n_trees)[None, :]
        node = np.zeros((X.shape[0], n_trees), dtype=np.intp)
        rows = np.arange(X.shape[0])[:, None]
        for _ in range(self.depth):
            x = X[rows, self.feature[trees, node]]
            go_left = np.where(
                np.isnan(x), self.missing_left[trees, node], x <= self.threshold[trees, node]
            )
            step = np.where(go_left, self.left[trees, node], self.right[trees, node])
            node = np.where(self.leaf[trees, node], node, step)
        return np.asarray(self.baseline + self.value[trees, node].sum(axis=1), dtype=np.float64)

    def pd(self, values: FloatArray) -> FloatArray:
        """Calibrated probability of default (scikit-learn's sigmoid calibration)."""
        return np.asarray(1.0 / (1.0 + np.exp(self.a * self.raw(values) + self.b)), np.float64)


@dataclass(frozen=True)
class CompiledGbm:
    """The calibrated model's probability of default, averaged over its calibrated copies."""

    members: tuple[_Member, ...]

    def predict_pd(self, values: FloatArray) -> FloatArray:
        """Return the calibrated probability of default of each row of a float matrix."""
        total = np.zeros(values.shape[0], dtype=np.float64)
        for member in self.members:
            total += member.pd(values)
        return total / len(self.members)


def compile_gbm(calibrated: Any) -> CompiledGbm | None:
    """Flatten a fitted calibrated boosted pipeline, or None for a layout it does not know."""
    members = []
    for item in getattr(calibrated, "calibrated_classifiers_", []):
        member = _compile_member(item)
        if member is None:
            return None
        members.append(member)
    return CompiledGbm(tuple(members)) if members else None


def _compile_member(item: Any) -> _Member | None:
    pipeline = item.estimator
    calibrators = item.calibrators
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2 or len(calibrators) != 1:
        return None
    imputer, booster = pipeline.steps[0][1], pipeline.steps[1][1]
    calibrator = calibrators[0]
    if not isinstance(imputer, RareMissingImputer) or not isinstance(
        booster, HistGradientBoostingClassifier
    ):
        return None
    if type(calibrator).__name__ != "_SigmoidCalibration" or booster.n_trees_per_iteration_ != 1:
        return None
    if getattr(booster, "is_categorical_", None) is not None and booster.is_categorical_.any():
        return None
    trees = [p[0].nodes for p in booster._predictors]
    width = max(len(t) for t in trees)

    def pad(field: str, dtype: Any) -> Any:
        out = np.zeros((len(trees), width), dtype=dtype)
        for i, nodes in enumerate(trees):
            out[i, : len(nodes)] = nodes[field]
        return out

    leaf = pad("is_leaf", np.bool_)
    for i, nodes in enumerate(trees):
        leaf[i, len(nodes) :] = True
    return _Member(
        filled=np.asarray(imputer.filled_, dtype=np.intp),
        medians=np.asarray(imputer.medians_, dtype=np.float64),
        baseline=float(np.asarray(booster._baseline_prediction).ravel()[0]),
        feature=pad("feature_idx", np.intp),
        threshold=pad("num_threshold", np.float64),
        left=pad("left", np.intp),
        right=pad("right", np.intp),
        missing_left=pad("missing_go_to_left", np.bool_),
        leaf=leaf,
        value=pad("value", np.float64),
        depth=int(max(int(nodes["depth"].max()) for nodes in trees)),
        a=float(calibrator.a_),
        b=float(calibrator.b_),
    )
