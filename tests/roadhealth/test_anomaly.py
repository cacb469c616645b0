"""Surface classifier and classic detectors, on simulated windows with known labels."""

from pathlib import Path

import numpy as np
import pytest

from services.roadhealth.analytics.anomaly import (
    ClassifierError,
    cross_validate_classifier,
    evaluate_classifier,
    load_classifier,
    save_classifier,
    train_classifier,
)
from services.roadhealth.analytics.dataset import read_window_folder
from services.roadhealth.analytics.detectors import (
    detect_window,
    detect_z_thresh,
    locate_events,
    score_events,
)
from services.roadhealth.analytics.features import compute_window_features
from services.roadhealth.analytics.profile import (
    draw_anomalies,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import VEHICLE_CLASSES, simulate_ride
from services.roadhealth.analytics.synthetic import (
    SURFACE_CLASSES,
    simulate_labelled_window,
    write_window_folder,
)


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    write_window_folder(root, n_per_class=16, seed=1)
    return root


@pytest.fixture(scope="module")
def test_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("test")
    write_window_folder(root, n_per_class=10, seed=2)
    return root


def test_classifier_recognises_unseen_simulated_windows(train_dir: Path, test_dir: Path) -> None:
    windows, labels = read_window_folder(train_dir, known_classes=SURFACE_CLASSES)
    model = train_classifier(windows, labels)
    test_windows, test_labels = read_window_folder(test_dir, known_classes=SURFACE_CLASSES)
    metrics = evaluate_classifier(model, test_windows, test_labels)
    assert metrics.n == 50
    assert metrics.accuracy >= 0.85
    assert metrics.pothole_f1 is not None and metrics.pothole_f1 >= 0.8


def test_cross_validation_scores_each_window_once(train_dir: Path) -> None:
    windows, labels = read_window_folder(train_dir, known_classes=SURFACE_CLASSES)
    runs = cross_validate_classifier(windows, labels, n_splits=4, n_repeats=1)
    assert len(runs) == 1 and runs[0].n == 80
    assert runs[0].accuracy >= 0.8


def test_saved_model_predicts_the_same(train_dir: Path, tmp_path: Path) -> None:
    windows, labels = read_window_folder(train_dir, known_classes=SURFACE_CLASSES)
    model = train_classifier(windows, labels)
    path = tmp_path / "model.json"
    save_classifier(model, path)
    again = load_classifier(path)
    assert again.predict(windows[:10]) == model.predict(windows[:10])
    assert np.allclose(again.predict_proba(windows[:3]).sum(axis=1), 1.0)


def test_two_class_model_works_and_one_class_is_refused() -> None:
    windows = [
        simulate_labelled_window(c, seed=i) for c in ("potholes", "regular_road") for i in range(8)
    ]
    labels = ["potholes"] * 8 + ["regular_road"] * 8
    model = train_classifier(windows, labels)
    assert model.predict(windows) == labels
    with pytest.raises(ClassifierError, match="two classes"):
        train_classifier(windows[:8], labels[:8])


def test_features_ignore_the_gravity_offset_of_a_device() -> None:
    window = simulate_labelled_window("potholes", seed=3)
    assert np.allclose(
        compute_window_features(window, rate_hz=50),
        compute_window_features(window + 0.4, rate_hz=50),
    )


def test_classic_detectors_find_planted_potholes_and_stay_quiet_on_smooth_road() -> None:
    rng = np.random.default_rng(3)
    planted = draw_anomalies(length_m=800.0, n_potholes=8, n_bumps=0, rng=rng, min_gap_m=40.0)
    profile = generate_road_profile(
        length_m=800.0, seed=3, gd_n0_m3=estimate_gd_n0_for_iri(1.5), anomalies=planted
    )
    ride = simulate_ride(
        profile.elevation_m, spacing_m=0.05, speed_mps=14.0, car=VEHICLE_CLASSES["car"]
    )
    events = locate_events(detect_z_thresh(ride.acc_z_mps2), distance_m=ride.distance_m)
    score = score_events(events, [a.position_m for a in planted])
    assert score.recall >= 0.75 and score.precision >= 0.9
    smooth = simulate_labelled_window("regular_road", seed=5)
    fired = detect_window(smooth, rate_hz=50)
    assert not fired["z_thresh"] and not fired["g_zero"]
