"""The `credit` click group: train and evaluate on any CSV of the right shape; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from services.credit.cli import credit
from services.credit.scoring.synthetic import synthetic_frame


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(credit, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    frame = synthetic_frame(400, seed=11).rename(columns={"class": "default"})
    frame.to_csv(root / "train.csv", index=False)
    code, out = run(
        "train",
        "--data",
        str(root / "train.csv"),
        "--out",
        str(root / "m"),
        "--label",
        "default",
        "--seed",
        "3",
        "--cv-folds",
        "0",
    )
    assert code == 0, out
    assert len(json.loads(out)["artefact_sha256"]) == 64
    return root, root / "m"


def test_evaluate_prints_the_json_metrics(trained: tuple[Path, Path]) -> None:
    root, model = trained
    synthetic_frame(500, seed=12).rename(columns={"class": "default"}).to_csv(
        root / "test.csv", index=False
    )
    code, out = run("evaluate", "--model", str(model), "--data", str(root / "test.csv"), "--json")
    assert code == 0, out
    metrics = json.loads(out)
    assert set(metrics) == {"auc", "gini", "ks", "brier", "n"}
    assert metrics["n"] == 500
    assert metrics["auc"] > 0.7


def write(root: Path, name: str, frame: pd.DataFrame) -> str:
    frame.to_csv(root / name, index=False)
    return str(root / name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="default"), "no label column 'default'"),
        (lambda f: f.assign(default=f["default"].replace(1, 2)), "must be 0 or 1: row"),
        (
            lambda f: f.assign(Attr2="high"),
            "non-numeric feature column(s): 'Attr2' (row 2: 'high')",
        ),
        (lambda f: f.assign(default=0), "one class only"),
        (lambda f: f.drop(columns="noise"), "missing: noise"),
        (lambda f: f.assign(extra=1.0), "not in the model: extra"),
    ],
)
def test_evaluate_bad_input(trained: tuple[Path, Path], change, message: str) -> None:  # type: ignore[no-untyped-def]
    root, model = trained
    path = write(
        root, "bad.csv", change(synthetic_frame(100, seed=5).rename(columns={"class": "default"}))
    )
    code, out = run("evaluate", "--model", str(model), "--data", path, "--json")
    assert code != 0
    assert message in out


def test_train_bad_input(tmp_path: Path) -> None:
    path = write(tmp_path, "one.csv", synthetic_frame(100).assign(**{"class": 1}))
    code, out = run("train", "--data", path, "--out", str(tmp_path / "m"))
    assert code != 0
    assert "one class only (every row is 1)" in out
    assert not (tmp_path / "m").exists()
    code, out = run("train", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "m"))
    assert code != 0
    assert "cannot read CSV" in out


def test_evaluate_missing_model(tmp_path: Path) -> None:
    code, out = run(
        "evaluate", "--model", str(tmp_path), "--data", str(tmp_path / "x.csv"), "--json"
    )
    assert code != 0
    assert "no model metadata" in out


def test_train_seed_default_is_the_training_default() -> None:
    # services.credit.cli keeps its own copy so that `credit --help` does not import sklearn
    from services.credit import cli
    from services.credit.scoring.training import DEFAULT_SEED

    assert cli.DEFAULT_SEED == DEFAULT_SEED
