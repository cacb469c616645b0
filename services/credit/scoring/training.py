"""Reproducible training and validation of the gradient-boosted model and the scorecard.

One seed drives the stratified hold-out split, the cross-validation folds, the calibration folds
and both learners. The shipped artefact is the pair fitted on the training split, so the hold-out
metrics recorded with it describe exactly that artefact; cross-validation on the training split
reports how stable those figures are.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.credit.scoring.dataset import LabelledData, require_both_classes
from services.credit.scoring.impute import RareMissingImputer
from services.credit.scoring.metrics import discrimination, validation_report
from services.credit.scoring.rating import GRADE_BANDS
from services.credit.scoring.scorecard import make_scorecard

FORMAT_VERSION = 1
DEFAULT_SEED = 20160365


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a trained model besides the data."""

    seed: int = DEFAULT_SEED
    label: str = "class"
    test_size: float = 0.2
    cv_folds: int = 5
    calibration_folds: int = 5
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 10
    l2_regularization: float = 1.0
    max_features: float = 0.5
    scorecard_bins: int = 10
    scorecard_c: float = 0.05
    # OpenMP threads for boosting: one is fastest on data this small and on shared machines.
    threads: int = 1


def make_gbm(config: TrainingConfig, labels: npt.NDArray[np.int_]) -> CalibratedClassifierCV:
    """Return the unfitted, sigmoid-calibrated gradient-boosted model.

    One booster is fitted on all the training rows; its sigmoid calibrator is fitted on the
    out-of-fold scores of `calibration_folds` boosters fitted on the folds (`ensemble=False`),
    so a rating walks one set of trees instead of one per fold.
    """
    booster = HistGradientBoostingClassifier(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        max_features=config.max_features,
        early_stopping=False,
        random_state=config.seed,
    )
    model = Pipeline([("impute", RareMissingImputer()), ("gbm", booster)])
    return CalibratedClassifierCV(
        model, method="sigmoid", cv=_folds(config, labels), ensemble=False
    )


def make_explainer(config: TrainingConfig, labels: npt.NDArray[np.int_]) -> CalibratedClassifierCV:
    """Return the unfitted, sigmoid-calibrated WOE scorecard (one model, for its coefficients)."""
    scorecard = make_scorecard(seed=config.seed, n_bins=config.scorecard_bins, c=config.scorecard_c)
    return CalibratedClassifierCV(
        scorecard, method="sigmoid", cv=_folds(config, labels), ensemble=False
    )


def train(data: LabelledData, *, config: TrainingConfig | None = None) -> dict[str, Any]:
    """Fit both models on a stratified training split; return the bundle with its metadata."""
    config = config or TrainingConfig()
    with threadpool_limits(limits=config.threads, user_api="openmp"):
        return _train(data, config)


def _train(data: LabelledData, config: TrainingConfig) -> dict[str, Any]:
    require_both_classes(data.labels)
    X = data.features.to_numpy(dtype=np.float64)
    y = data.labels
    X_fit, X_test, y_fit, y_test = train_test_split(
        X, y, test_size=config.test_size, stratify=y, random_state=config.seed
    )
    gbm = make_gbm(config, y_fit).fit(X_fit, y_fit)
    explainer = make_explainer(config, y_fit).fit(X_fit, y_fit)
    metrics = {
        "holdout": {
            "gbm": validation_report(y_test, gbm.predict_proba(X_test)[:, 1]),
            "scorecard": validation_report(y_test, explainer.predict_proba(X_test)[:, 1]),
        },
        "cross_validation": cross_validate(X_fit, y_fit, config),
    }
    metadata = _metadata(data, config, metrics, n_fit=len(y_fit), n_test=len(y_test))
    return {"gbm": gbm, "scorecard": explainer, "metadata": metadata}


def cross_validate(
    X: npt.NDArray[np.float64], y: npt.NDArray[np.int_], config: TrainingConfig
) -> dict[str, Any]:
    """Return per-fold and mean/std AUC, Gini, KS and Brier of both models (empty if disabled)."""
    if config.cv_folds < 2:
        return {}
    folds = StratifiedKFold(config.cv_folds, shuffle=True, random_state=config.seed)
    results: dict[str, list[dict[str, float | int]]] = {"gbm": [], "scorecard": []}
    for fit_idx, test_idx in folds.split(X, y):
        for name, make in (("gbm", make_gbm), ("scorecard", make_explainer)):
            model = make(config, y[fit_idx]).fit(X[fit_idx], y[fit_idx])
            results[name].append(
                discrimination(y[test_idx], model.predict_proba(X[test_idx])[:, 1])
            )
    return {name: _summarise(folds_) for name, folds_ in results.items()}


def _summarise(folds: list[dict[str, float | int]]) -> dict[str, Any]:
    table = pd.DataFrame(folds)
    summary: dict[str, Any] = {"folds": len(folds)}
    for metric in ("auc", "gini", "ks", "brier"):
        summary[f"{metric}_mean"] = round(float(table[metric].mean()), 6)
        summary[f"{metric}_std"] = round(float(table[metric].std(ddof=1)), 6)
    summary["per_fold"] = folds
    return summary


def _folds(config: TrainingConfig, labels: npt.NDArray[np.int_]) -> StratifiedKFold:
    smallest = int(min(labels.sum(), len(labels) - labels.sum()))
    n_splits = max(2, min(config.calibration_folds, smallest))
    return StratifiedKFold(n_splits, shuffle=True, random_state=config.seed)


def _metadata(
    data: LabelledData,
    config: TrainingConfig,
    metrics: dict[str, Any],
    *,
    n_fit: int,
    n_test: int,
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": (
            "rare-missing median imputation + sigmoid-calibrated HistGradientBoostingClassifier; "
            "reasons from the calibrated WOE logistic scorecard"
        ),
        "feature_names": data.feature_names,
        "label": config.label,
        "seed": config.seed,
        "config": asdict(config),
        "data_sha256": data.sha256,
        "n_rows": len(data.labels),
        "n_positive": int(data.labels.sum()),
        "n_train": n_fit,
        "n_holdout": n_test,
        "metrics": metrics,
        "grade_bands": [{"grade": g, "max_pd": b} for g, b in GRADE_BANDS],
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
    }
