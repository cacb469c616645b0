"""Credit model benchmarks: hold-out AUC of the default model, the model against a plain
gradient-boosting baseline under the same repeated cross-validation, batch throughput, single
latency."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.credit.scoring.artefact import load_model
from services.credit.scoring.dataset import read_labelled_csv
from services.credit.scoring.features import polish_attributes
from services.credit.scoring.metrics import discrimination
from services.credit.scoring.model import CreditModel
from services.credit.scoring.synthetic import one_period_statements
from services.credit.scoring.training import TrainingConfig, make_gbm

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "services" / "credit" / "default_model"
DEV_CSV = "credit/polish_bankruptcy_1year_dev.csv"
BATCH = 10_000
SINGLE_RUNS = 300
# Model against baseline: 3 repeats of stratified 5-fold CV on the whole development file
CV_FOLDS = 5
CV_REPEATS = int(os.environ.get("SMARTCITY_BENCH_CV_REPEATS", "3"))


def shared_data_dir() -> Path:
    """Where the real development data lives (SMARTCITY_SHARED_DATA, else ../shared/data)."""
    return Path(os.environ.get("SMARTCITY_SHARED_DATA", REPO.parent / "shared" / "data"))


def holdout_auc(model: CreditModel) -> dict[str, Any]:
    """Re-create the training hold-out split of the dev data and score the model on it."""
    path = shared_data_dir() / DEV_CSV
    result: dict[str, Any] = {"name": "credit_default_model_holdout", "model_sha256": model.sha256}
    if not path.is_file():
        return {**result, "note": f"{path} not present; hold-out AUC not measured"}
    data = read_labelled_csv(path, label=model.metadata["label"])
    if data.sha256 != model.metadata["data_sha256"]:
        return {**result, "note": "dev data differs from the model's training data; not measured"}
    config = model.metadata["config"]
    _, X_test, _, y_test = train_test_split(
        data.features,
        data.labels,
        test_size=config["test_size"],
        stratify=data.labels,
        random_state=config["seed"],
    )
    cv = model.metadata["metrics"]["cross_validation"].get("gbm", {})
    return {
        **result,
        **discrimination(y_test, model.predict_pd(X_test)),
        "cv_auc_mean": cv.get("auc_mean"),
        "cv_auc_std": cv.get("auc_std"),
        "cv_folds": cv.get("folds"),
    }


def baseline() -> HistGradientBoostingClassifier:
    """The plain reference: boosting on the raw 64 ratios, no imputation, no calibration."""
    return HistGradientBoostingClassifier(learning_rate=0.05, max_iter=300)


def model_vs_baseline(model: CreditModel) -> dict[str, Any]:
    """The shipped model's recipe against the plain baseline, fold by fold on the same folds.

    Both are refitted on each training fold of repeated stratified 5-fold CV over the whole
    development file and scored on the held-out fold: AUC (ranking) and Brier score
    (calibration; lower is better). `wins` counts folds where the model is strictly better.
    """
    path = shared_data_dir() / DEV_CSV
    result: dict[str, Any] = {"name": "credit_model_vs_baseline", "model_sha256": model.sha256}
    if not path.is_file():
        return {**result, "note": f"{path} not present; comparison not run"}
    data = read_labelled_csv(path, label=model.metadata["label"])
    X, y = data.features.to_numpy(dtype=np.float64), data.labels
    config = TrainingConfig(**model.metadata["config"])
    folds = RepeatedStratifiedKFold(
        n_splits=CV_FOLDS, n_repeats=CV_REPEATS, random_state=config.seed
    )
    scores: dict[str, list[tuple[float, float]]] = {"model": [], "baseline": []}
    with threadpool_limits(limits=config.threads, user_api="openmp"):
        for fit, test in folds.split(X, y):
            for name, learner in (("model", make_gbm(config, y[fit])), ("baseline", baseline())):
                pd_values = learner.fit(X[fit], y[fit]).predict_proba(X[test])[:, 1]
                scores[name].append(
                    (roc_auc_score(y[test], pd_values), brier_score_loss(y[test], pd_values))
                )
    return {**result, **_side_by_side(scores), "folds": len(scores["model"])}


def _side_by_side(scores: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    table = {name: np.array(values) for name, values in scores.items()}
    out: dict[str, Any] = {}
    for column, (metric, digits) in enumerate((("auc", 4), ("brier", 5))):
        for name, values in table.items():
            out[f"{name}_{metric}_mean"] = round(float(values[:, column].mean()), digits)
            out[f"{name}_{metric}_std"] = round(float(values[:, column].std(ddof=1)), digits)
        diff = table["model"][:, column] - table["baseline"][:, column]
        better = diff > 0 if metric == "auc" else diff < 0
        out[f"{metric}_difference_mean"] = round(float(diff.mean()), digits)
        out[f"{metric}_difference_std"] = round(float(diff.std(ddof=1)), digits)
        out[f"{metric}_model_wins"] = int(better.sum())
    return out


def batch_throughput(model: CreditModel) -> dict[str, Any]:
    """Rate 10,000 synthetic SMEs from statements; bare PD prediction is the ceiling."""
    statements = one_period_statements(BATCH, seed=1)
    start = time.perf_counter()
    features = polish_attributes(statements, by="sme")
    ratings = model.rate_many(features)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    model.predict_pd(features)
    ceiling = time.perf_counter() - start
    return {
        "name": "credit_batch_ratings",
        "n": len(ratings),
        "seconds": round(elapsed, 4),
        "ratings_per_second": round(len(ratings) / elapsed, 1),
        "ceiling_predict_per_second": round(BATCH / ceiling, 1),
        "ratio_to_ceiling": round(ceiling / elapsed, 3),
    }


def single_latency(model: CreditModel) -> dict[str, Any]:
    """Latency of rating one SME in-process (features to rating with reasons)."""
    rows = polish_attributes(one_period_statements(SINGLE_RUNS, seed=2), by="sme")
    records = cast("list[dict[str, float | None]]", rows.to_dict(orient="records"))
    model.rate(records[0])
    times = []
    for record in records:
        start = time.perf_counter()
        model.rate(record)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {
        "name": "credit_single_rating_latency",
        "predictor": "flattened numpy trees" if model.compiled is not None else "scikit-learn",
        "runs": len(times),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def run() -> list[dict[str, Any]]:
    """Return one JSON-able dict per benchmark result."""
    model = load_model(DEFAULT_MODEL)
    return [
        holdout_auc(model),
        model_vs_baseline(model),
        batch_throughput(model),
        single_latency(model),
    ]


if __name__ == "__main__":
    import json

    for item in run():
        print(json.dumps(item))
