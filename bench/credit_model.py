"""Credit model benchmarks: hold-out AUC of the default model, batch throughput, single latency."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from services.credit.artefact import load_model
from services.credit.dataset import read_labelled_csv
from services.credit.features import polish_attributes
from services.credit.metrics import discrimination
from services.credit.model import CreditModel
from services.credit.synthetic import synthetic_statements

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "services" / "credit" / "default_model"
DEV_CSV = "credit/polish_bankruptcy_1year_dev.csv"
BATCH = 10_000
SINGLE_RUNS = 300


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


def batch_throughput(model: CreditModel) -> dict[str, Any]:
    """Rate 10,000 synthetic SMEs from statements; bare PD prediction is the ceiling."""
    statements = synthetic_statements(BATCH, seed=1)
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
    rows = polish_attributes(synthetic_statements(SINGLE_RUNS, seed=2), by="sme")
    records = rows.to_dict(orient="records")
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
    return [holdout_auc(model), batch_throughput(model), single_latency(model)]


if __name__ == "__main__":
    import json

    for item in run():
        print(json.dumps(item))
