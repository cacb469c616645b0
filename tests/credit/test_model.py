"""Training, artefact integrity and rating on a synthetic dataset with a known risk structure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from services.credit.errors import (
    FeatureMismatchError,
    ModelError,
    ModelIntegrityError,
    TrainingDataError,
)
from services.credit.scoring.artefact import METADATA_FILE, MODEL_FILE, load_model, save_model
from services.credit.scoring.dataset import labelled_from_frame, read_labelled_csv
from services.credit.scoring.model import CreditModel
from services.credit.scoring.rating import GRADES, ScoreScale, grades
from services.credit.scoring.synthetic import synthetic_frame
from services.credit.scoring.training import TrainingConfig, train


def test_metadata_records_data_hash_seed_versions_and_metrics(
    model: CreditModel, data_csv: Path, fast_config: TrainingConfig
) -> None:
    meta = model.metadata
    assert meta["data_sha256"] == read_labelled_csv(data_csv).sha256
    assert meta["seed"] == fast_config.seed
    assert meta["feature_names"] == ["Attr1", "Attr2", "Attr4", "noise"]
    assert {"scikit-learn", "numpy", "pandas"} <= set(meta["versions"])
    holdout = meta["metrics"]["holdout"]["gbm"]
    assert holdout["auc"] > 0.75
    assert holdout["gini"] == pytest.approx(2 * holdout["auc"] - 1, abs=1e-5)
    assert len(holdout["calibration_by_decile"]) == 10
    assert meta["metrics"]["cross_validation"]["gbm"]["folds"] == 2
    assert meta["artefact_sha256"] == model.sha256


def test_training_is_reproducible(
    tmp_path: Path, data_csv: Path, model: CreditModel, fast_config: TrainingConfig
) -> None:
    again = save_model(train(read_labelled_csv(data_csv), config=fast_config), tmp_path / "again")
    assert again.sha256 == model.sha256


def test_tampered_artefact_is_refused(tmp_path: Path, model_dir: Path, model: CreditModel) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / METADATA_FILE).write_bytes((model_dir / METADATA_FILE).read_bytes())
    (copy / MODEL_FILE).write_bytes((model_dir / MODEL_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="does not match metadata"):
        load_model(copy)
    with pytest.raises(ModelIntegrityError, match="is not the expected"):
        load_model(model_dir, expected_sha256="00" * 32)
    assert load_model(model_dir, expected_sha256=model.sha256.upper()).sha256 == model.sha256
    with pytest.raises(ModelError, match="no model metadata"):
        load_model(tmp_path / "nowhere")


def test_rating_has_pd_score_grade_and_reasons(model: CreditModel) -> None:
    risky = model.rate({"Attr1": -0.3, "Attr2": 1.15, "Attr4": 0.4, "noise": 0.0})
    safe = model.rate({"Attr1": 0.25, "Attr2": 0.15, "Attr4": 3.0, "noise": 0.0})
    assert risky.probability_of_default > safe.probability_of_default
    assert risky.score < safe.score
    assert GRADES.index(risky.grade) > GRADES.index(safe.grade)
    assert risky.model_sha256 == model.sha256
    assert risky.reasons and risky.reasons[0].feature in {"Attr1", "Attr2", "Attr4"}
    assert risky.reasons[0].points < 0
    assert risky.reasons[0].description == "net profit / total assets" or risky.reasons[0].category
    assert json.dumps(risky.to_dict())


def test_missing_value_is_accepted(model: CreditModel) -> None:
    rating = model.rate({"Attr1": 0.0, "Attr2": 0.5, "Attr4": None, "noise": 0.0})
    assert 0 < rating.probability_of_default < 1


def test_feature_mismatch_is_named(model: CreditModel) -> None:
    with pytest.raises(FeatureMismatchError, match=r"missing: Attr4; not in the model: Attr5"):
        model.rate({"Attr1": 0.0, "Attr2": 0.5, "Attr5": 1.0, "noise": 0.0})


def test_a_batch_of_10000_matches_single_ratings(model: CreditModel) -> None:
    # Its speed is a benchmark (bench/credit_model.py), not a test
    frame = synthetic_frame(10_000, seed=3).drop(columns="class")
    ratings = model.rate_many(frame)
    assert len(ratings) == 10_000
    single = model.rate(cast("dict[str, float | None]", frame.iloc[5].to_dict()))
    assert single.probability_of_default == pytest.approx(ratings[5].probability_of_default)


def test_score_scale_and_grade_bands() -> None:
    scale = ScoreScale(base_score=600, base_odds=50, pdo=20)
    assert scale.scores(np.array([1 / 51]))[0] == pytest.approx(600)
    assert scale.scores(np.array([1 / 101]))[0] == pytest.approx(620, abs=0.3)
    assert list(grades(np.array([0.0005, 0.004, 0.03, 0.5]))) == ["AAA", "A", "B", "C"]


def test_training_refuses_one_class_and_tiny_classes(fast_config: TrainingConfig) -> None:
    frame = synthetic_frame(200)
    frame["class"] = 0
    with pytest.raises(TrainingDataError, match="one class only"):
        train(labelled_from_frame(frame), config=fast_config)
    frame.loc[:4, "class"] = 1
    with pytest.raises(TrainingDataError, match="too few rows per class"):
        train(labelled_from_frame(frame), config=fast_config)
