"""A gate model trained on pieces cut shorter than 2 s judges short pieces; one trained without
them judges whole 2 s pieces only (issue 15, ninth session): the shortest piece a model may
judge is written in its file."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from services.roadhealth.analytics.anomaly import ClassifierError
from services.roadhealth.analytics.ensemble import (
    EnsembleClassifier,
    load_any_classifier,
    save_ensemble,
    short_cuts,
)
from services.roadhealth.analytics.routed_gate import RoutedGate
from services.roadhealth.analytics.shocks import largest_onset
from services.roadhealth.analytics.synthetic import simulate_labelled_window
from services.roadhealth.assessment import windows
from services.roadhealth.assessment.windows import (
    GATE_CLASSIFIER,
    SHORT_GATE_CLASSIFIER,
    analyse_window,
    can_judge,
    default_classifier,
)

RATE_HZ = 50


def _gate() -> EnsembleClassifier:
    gate = load_any_classifier(GATE_CLASSIFIER)
    assert isinstance(gate, EnsembleClassifier)
    return gate


def test_short_cuts_hold_the_shock_and_give_every_class_the_same_lengths() -> None:
    classes = ("potholes", "regular_road", "worn_out_road")
    pieces = [
        np.asarray(simulate_labelled_window(c, seed=s), dtype=np.float64)[:100]
        for c in classes
        for s in range(40)
    ]
    labels = [c for c in classes for _ in range(40)]
    cuts, cut_labels = short_cuts(pieces, labels, rate_hz=RATE_HZ, min_s=0.5, per_piece=2)
    assert Counter(cut_labels) == dict.fromkeys(classes, 80)
    lengths = {
        c: [cut.size for cut, lab in zip(cuts, cut_labels, strict=True) if lab == c]
        for c in classes
    }
    assert all(25 <= n < 100 for ns in lengths.values() for n in ns)
    # Drawn alike for every class: no class's mean length is far from another's
    means = [float(np.mean(ns)) for ns in lengths.values()]
    assert max(means) - min(means) < 8.0
    # Each cut is a stretch of its piece holding the piece's largest excursion
    for k, cut in enumerate(cuts):
        piece = pieces[k // 2]
        onset = largest_onset(piece, rate_hz=RATE_HZ)
        starts = [
            i
            for i in range(piece.size - cut.size + 1)
            if np.array_equal(piece[i : i + cut.size], cut)
        ]
        assert any(i <= onset < i + cut.size for i in starts)
    # A piece no longer than the shortest cut gives none
    assert short_cuts([pieces[0][:25]], ["potholes"], rate_hz=RATE_HZ, min_s=0.5) == ([], [])


def test_a_gate_judges_pieces_down_to_the_shortest_it_was_trained_on() -> None:
    whole_only = replace(_gate(), min_piece_s=None)
    short = replace(_gate(), min_piece_s=0.5)
    for size, by_whole_only, by_short in ((100, True, True), (99, False, True), (25, False, True)):
        piece = np.zeros(size)
        assert can_judge(whole_only, piece, rate_hz=RATE_HZ) is by_whole_only
        assert can_judge(short, piece, rate_hz=RATE_HZ) is by_short
    assert not can_judge(short, np.zeros(24), rate_hz=RATE_HZ)
    # At 100 Hz the same seconds
    assert can_judge(short, np.zeros(50), rate_hz=100.0)
    assert not can_judge(short, np.zeros(49), rate_hz=100.0)


def test_the_shortest_judged_piece_is_kept_in_the_model_file(tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    save_ensemble(replace(_gate(), min_piece_s=0.5), path)
    assert load_any_classifier(path).min_piece_s == 0.5  # type: ignore[union-attr]
    # A model saved without it judges whole pieces only, and its file has no such member
    save_ensemble(replace(_gate(), min_piece_s=None), path)
    assert "min_piece_s" not in json.loads(path.read_text())
    assert load_any_classifier(path).min_piece_s is None  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [0, -0.5, 2.5, "soon", [1], float("nan")])
def test_a_model_file_with_an_impossible_shortest_piece_is_refused(
    tmp_path: Path, bad: object
) -> None:
    path = tmp_path / "gate.json"
    save_ensemble(_gate(), path)
    doc = json.loads(path.read_text())
    doc["min_piece_s"] = bad
    path.write_text(json.dumps(doc))
    with pytest.raises(ClassifierError, match="damaged"):
        load_any_classifier(path)


def test_the_live_gate_judges_whole_pieces_by_its_gate_and_shorter_ones_by_its_short_model() -> (
    None
):
    live = default_classifier()
    assert isinstance(live, RoutedGate) and live.min_piece_s == 0.5
    short = load_any_classifier(SHORT_GATE_CLASSIFIER)
    rng = np.random.default_rng(3)
    pieces = [9.81 + rng.normal(0, 0.4, n) for n in (100, 50, 120, 25, 99)]
    got = live.predict_proba(pieces, rate_hz=RATE_HZ)
    for piece, row in zip(pieces, got, strict=True):
        by = _gate() if piece.size >= 100 else short
        assert np.allclose(row, by.predict_proba([piece], rate_hz=RATE_HZ)[0], atol=1e-12)
    # The two models do differ on a short piece (the gate alone calls it a pothole)
    assert not np.allclose(got[1], _gate().predict_proba([pieces[1]], rate_hz=RATE_HZ)[0])


def test_a_pothole_in_a_1_s_window_is_reported_and_plain_road_is_not() -> None:
    # The gateway simulator's default window: a phone-recorded pothole's second, and quiet road
    from tests.roadhealth.test_live_classifier import _phone_pothole_window

    window = np.asarray(_phone_pothole_window(0), dtype=np.float64)
    onset = largest_onset(window, rate_hz=RATE_HZ)
    second = window[max(0, onset - 15) : max(0, onset - 15) + RATE_HZ]
    analysis = analyse_window(list(second), rate_hz=RATE_HZ, speed_mps=10.0, vehicle_class="car")
    assert any(e.reported and e.surface == "potholes" for e in analysis.events)
    plain = 9.81 + np.random.default_rng(0).normal(0, 0.3, RATE_HZ)
    plain[20] += 2.0  # a shock above the detector's 1.5 m/s^2 on otherwise plain road
    analysis = analyse_window(list(plain), rate_hz=RATE_HZ, speed_mps=10.0, vehicle_class="car")
    assert analysis.events and not any(e.reported for e in analysis.events)


def test_an_unreadable_short_piece_gate_is_said_and_the_whole_piece_gate_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "short.json"
    broken.write_text("{not json")
    monkeypatch.setattr(windows, "SHORT_GATE_CLASSIFIER", broken)
    windows.default_classifier.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=windows.__name__):
            live = windows.default_classifier()
        assert live is not None and not isinstance(live, RoutedGate)
        assert "pieces under 2 s will not be judged" in caplog.text
    finally:
        windows.default_classifier.cache_clear()  # the next caller loads the shipped pair
