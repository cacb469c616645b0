"""Shared fixtures: a synthetic labelled dataset and one small model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.credit.scoring.artefact import save_model
from services.credit.scoring.dataset import read_labelled_csv
from services.credit.scoring.model import CreditModel
from services.credit.scoring.synthetic import synthetic_frame
from services.credit.scoring.training import TrainingConfig, train

FAST = TrainingConfig(seed=7, cv_folds=2, calibration_folds=3, max_iter=40)


@pytest.fixture(scope="session")
def fast_config() -> TrainingConfig:
    return FAST


@pytest.fixture(scope="session")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("credit") / "train.csv"
    synthetic_frame().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, data_csv: Path) -> Path:
    out = tmp_path_factory.mktemp("credit") / "model"
    save_model(train(read_labelled_csv(data_csv), config=FAST), out)
    return out


@pytest.fixture(scope="session")
def model(model_dir: Path) -> CreditModel:
    from services.credit.scoring.artefact import load_model

    return load_model(model_dir)
