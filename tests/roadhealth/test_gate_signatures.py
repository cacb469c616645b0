"""The live gate's simulated training pieces: one as a labelled window is cut, and some as the
live gate cuts a telemetry window laid at a random phase over the anomaly."""

import numpy as np

from services.roadhealth.analytics.response import CABIN
from services.roadhealth.analytics.shocks import largest_onset
from services.roadhealth.analytics.signatures import labelled_gate_pieces


def test_each_pass_gives_one_centred_piece_and_the_live_pieces_asked_for() -> None:
    pieces, labels = labelled_gate_pieces(CABIN, count=4, seed=11, live_per_pass=3)
    assert len(pieces) == len(labels) == 3 * 4 * (1 + 3)
    assert labels == (["potholes"] * 16 + ["asphalt_bumps"] * 16 + ["regular_road"] * 16)
    assert all(p.size == 100 for p in pieces)  # 2 s at 50 Hz
    # A centred piece has its pothole's onset 0.7 s in; live pieces put it wherever a window's
    # phase clamps it (the shock cut by a window's edge too), so their onsets spread
    holes = pieces[:16]
    centred = [largest_onset(p, rate_hz=50.0) for p in holes[::4]]
    live = [largest_onset(p, rate_hz=50.0) for k, p in enumerate(holes) if k % 4]
    assert sum(abs(c - 35) <= 2 for c in centred) >= 3  # (a rough road's own shock may lead)
    assert np.ptp(live) >= 20


def test_one_live_piece_per_pass_is_the_shipped_gate_models_training() -> None:
    one, _ = labelled_gate_pieces(CABIN, count=2, seed=7)
    three, _ = labelled_gate_pieces(CABIN, count=2, seed=7, live_per_pass=3)
    assert len(one) == 3 * 2 * 2 and len(three) == 3 * 2 * 4
    # the same passes: each pass's centred piece and its first live piece are the same draws
    assert np.array_equal(one[0], three[0]) and np.array_equal(one[1], three[1])
