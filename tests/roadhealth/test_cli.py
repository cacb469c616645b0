"""The `road` CLI: outputs a user reads and the errors bad input gets."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from services.roadhealth.analytics.anomaly import save_classifier, train_classifier
from services.roadhealth.analytics.dataset import read_window_folder
from services.roadhealth.analytics.ensemble import load_any_classifier
from services.roadhealth.analytics.profile import generate_road_profile
from services.roadhealth.analytics.synthetic import (
    SURFACE_CLASSES,
    simulate_labelled_window,
    write_window_folder,
)
from services.roadhealth.assessment.windows import analyse_window, is_gate_model
from services.roadhealth.cli import road


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("windows")
    write_window_folder(root, n_per_class=8, seed=4)
    return root


def _write_profile(path: Path, elevation: np.ndarray, spacing_m: float) -> Path:
    distance = np.arange(elevation.size) * spacing_m
    pd.DataFrame({"distance_m": distance, "elevation_m": elevation}).to_csv(path, index=False)
    return path


def test_iri_prints_json(tmp_path: Path) -> None:
    profile = generate_road_profile(length_m=200.0, seed=2, roughness_class="A")
    path = _write_profile(tmp_path / "p.csv", profile.elevation_m, 0.05)
    result = CliRunner().invoke(road, ["iri", "--profile", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["iri_m_per_km"] == pytest.approx(
        profile.iri_m_per_km, abs=1e-3
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("distance_m,height\n0,0\n0.25,0\n", "lacks column"),
        ("distance_m,elevation_m\n0,0\n0.25,abc\n", "non-numeric"),
        ("distance_m,elevation_m\n0,0\n0.25,0\n0.5,0\n", "at least"),
        ("distance_m,elevation_m\n0,0\n0.25,0\n0.1,0\n", "increase"),
    ],
)
def test_iri_refuses_bad_profiles(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = CliRunner().invoke(road, ["iri", "--profile", str(path)])
    assert result.exit_code == 2
    assert message in result.output


def test_train_then_evaluate_prints_scores(data_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    runner = CliRunner()
    trained = runner.invoke(
        road, ["train-classifier", "--data", str(data_dir), "--out", str(model)]
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads(model.read_text())["version"] == 2  # the ridge ensemble
    result = runner.invoke(
        road, ["evaluate-classifier", "--model", str(model), "--data", str(data_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert set(scores) == {"accuracy", "macro_f1", "pothole_f1", "n"}
    assert scores["n"] == 40 and scores["accuracy"] > 0.9


def test_train_with_pieces_writes_a_gate_model_the_live_analysis_uses(
    data_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "gate.json"
    trained = CliRunner().invoke(
        road,
        [
            "train-classifier",
            "--pieces",
            "--simulated-passes",
            "2",
            "--data",
            str(data_dir),
            "--out",
            str(model),
        ],
    )
    assert trained.exit_code == 0, trained.output
    gate = load_any_classifier(model)
    assert json.loads(model.read_text())["version"] == 2 and is_gate_model(gate)
    window = simulate_labelled_window("potholes", seed=3)
    analysis = analyse_window(
        list(window), rate_hz=50, speed_mps=10.0, vehicle_class="car", classifier=gate
    )
    assert analysis.events and all(e.label_decides for e in analysis.events)
    assert any(e.model == gate.model_id and e.reported for e in analysis.events)


def test_evaluate_still_reads_a_version_1_model(data_dir: Path, tmp_path: Path) -> None:
    windows, labels = read_window_folder(data_dir, known_classes=SURFACE_CLASSES)
    model = tmp_path / "v1.json"
    save_classifier(train_classifier(windows, labels), model)
    result = CliRunner().invoke(
        road, ["evaluate-classifier", "--model", str(model), "--data", str(data_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["n"] == 40 and scores["accuracy"] > 0.9 and scores["pothole_f1"] is not None


def test_training_refuses_bad_folders(tmp_path: Path) -> None:
    runner = CliRunner()
    out = str(tmp_path / "m.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(road, ["train-classifier", "--data", str(empty), "--out", out])
    assert result.exit_code == 2 and "no class folders" in result.output
    (tmp_path / "odd" / "speed_bumps").mkdir(parents=True)
    result = runner.invoke(
        road, ["train-classifier", "--data", str(tmp_path / "odd"), "--out", out]
    )
    assert result.exit_code == 2 and "unknown class folder" in result.output
    bad = tmp_path / "bad" / "potholes"
    bad.mkdir(parents=True)
    (bad / "w.csv").write_text("acc_z\n" + "9.8\n" * 20 + "oops\n")
    result = runner.invoke(road, ["train-classifier", "--data", str(bad.parent), "--out", out])
    assert result.exit_code == 2 and "non-numeric" in result.output
    (bad / "w.csv").write_text("acc_x\n" + "9.8\n" * 20)
    result = runner.invoke(road, ["train-classifier", "--data", str(bad.parent), "--out", out])
    assert result.exit_code == 2 and "no 'acc_z' column" in result.output


def test_evaluate_refuses_a_model_that_is_not_ours(data_dir: Path, tmp_path: Path) -> None:
    for content in ('{"format": "something-else"}', "not json at all", ""):
        model = tmp_path / "model.json"
        model.write_text(content)
        result = CliRunner().invoke(
            road, ["evaluate-classifier", "--model", str(model), "--data", str(data_dir), "--json"]
        )
        assert result.exit_code == 1
        assert "not a road anomaly model" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"format": "smartcity.roadhealth.anomaly-classifier", "version": 7}',
            "version 7; this suite reads versions 1 and 2",
        ),
        ('{"format": "smartcity.roadhealth.anomaly-classifier", "version": 2}', "other features"),
    ],
)
def test_evaluate_names_an_unknown_version_or_feature_set(
    data_dir: Path, tmp_path: Path, content: str, message: str
) -> None:
    model = tmp_path / "model.json"
    model.write_text(content)
    result = CliRunner().invoke(
        road, ["evaluate-classifier", "--model", str(model), "--data", str(data_dir), "--json"]
    )
    assert result.exit_code == 1
    assert message in result.output


def test_evaluate_refuses_a_damaged_version_2_model(data_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    runner = CliRunner()
    trained = runner.invoke(
        road, ["train-classifier", "--data", str(data_dir), "--out", str(model)]
    )
    assert trained.exit_code == 0, trained.output
    doc = json.loads(model.read_text())
    doc["kernel"]["coef"] = doc["kernel"]["coef"][:-1]  # one class's row lost
    model.write_text(json.dumps(doc))
    result = runner.invoke(
        road, ["evaluate-classifier", "--model", str(model), "--data", str(data_dir), "--json"]
    )
    assert result.exit_code == 1
    assert "damaged road anomaly model" in result.output
