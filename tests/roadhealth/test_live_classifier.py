"""The learned classifier in the live per-window analysis: it judges each detected event, a
pothole report needs its agreement (the gate model's label decides), and its model id is kept
with the detection."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from services.roadhealth.analytics.anomaly import load_classifier, resample, train_classifier
from services.roadhealth.analytics.ensemble import (
    GATE_N_KERNELS,
    EnsembleClassifier,
    default_kernels,
    load_any_classifier,
)
from services.roadhealth.analytics.profile import (
    Anomaly,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import get_vehicle
from services.roadhealth.analytics.response import CABIN, simulate_phone_ride
from services.roadhealth.analytics.routed_gate import RoutedGate
from services.roadhealth.analytics.synthetic import simulate_labelled_window
from services.roadhealth.assessment.windows import (
    GATE_CLASSIFIER,
    SHORT_GATE_CLASSIFIER,
    V1_CLASSIFIER,
    analyse_window,
    default_classifier,
)

RATE_HZ = 50


def _pothole_window(seed: int, rate_hz: int = RATE_HZ) -> list[float]:
    return [float(v) for v in simulate_labelled_window("potholes", seed=seed, rate_hz=rate_hz)]


SURFACES = {"asphalt_bumps", "metal_bumps", "potholes", "regular_road", "worn_out_road"}


def test_the_live_model_is_the_gate_and_names_itself_in_each_event_it_judges() -> None:
    live = default_classifier()
    gate = load_any_classifier(GATE_CLASSIFIER)
    short = load_any_classifier(SHORT_GATE_CLASSIFIER)
    # The gate judges whole pieces, its short model shorter ones; both ids name the pair
    assert isinstance(live, RoutedGate) and live.whole.model_id == gate.model_id
    assert live.model_id == f"{gate.model_id}+{short.model_id}"
    assert set(gate.classes) == SURFACES and len(gate.model_id) == 16
    # The previous live model stays loadable, for comparison
    assert set(load_classifier(V1_CLASSIFIER).classes) == SURFACES
    analysis = analyse_window(
        _phone_pothole_window(0), rate_hz=RATE_HZ, speed_mps=10.0, vehicle_class="car"
    )
    (event,) = analysis.events
    assert event.model == live.model_id and event.surface == "potholes"
    assert event.p_anomaly is not None and event.p_anomaly >= 0.5
    assert event.reported and event.as_json()["reported"] is True


def test_the_shipped_gate_model_holds_the_kernels_its_training_draws() -> None:
    # The model file and the code that trains it agree (GATE_N_KERNELS changed without a
    # retrained model would judge with other kernels than `train-classifier --pieces` draws)
    gate = load_any_classifier(GATE_CLASSIFIER)
    assert isinstance(gate, EnsembleClassifier)
    drawn = default_kernels(gate.rate_hz, GATE_N_KERNELS)
    assert gate.kernels.lengths.size == GATE_N_KERNELS == 1000
    assert np.array_equal(gate.kernels.weights, drawn.weights)
    assert np.array_equal(gate.kernels.dilation, drawn.dilation)
    assert np.array_equal(gate.kernels.padded, drawn.padded)
    assert gate.kernel.coef.shape == (len(gate.classes), 2 * GATE_N_KERNELS)


def test_a_classifier_that_sees_plain_road_vetoes_the_pothole_report() -> None:
    windows = [
        simulate_labelled_window(c, seed=s)
        for c in ("regular_road", "worn_out_road")
        for s in range(12)
    ]
    labels = ["regular_road"] * 12 + ["worn_out_road"] * 12
    plain_only = train_classifier(windows, labels)
    with_potholes = train_classifier(
        windows + [simulate_labelled_window("potholes", seed=100 + s) for s in range(12)],
        labels + ["potholes"] * 12,
    )
    acc = _pothole_window(7)
    vetoed = analyse_window(
        acc, rate_hz=RATE_HZ, speed_mps=10.0, vehicle_class="car", classifier=plain_only
    )
    agreed = analyse_window(
        acc, rate_hz=RATE_HZ, speed_mps=10.0, vehicle_class="car", classifier=with_potholes
    )
    assert [e.kind for e in vetoed.events] == [e.kind for e in agreed.events]
    assert any(e.kind == "pothole" for e in vetoed.events)
    assert not any(e.reported for e in vetoed.events)  # detector alone is not enough
    assert any(e.reported for e in agreed.events)


def test_a_100_hz_sensor_is_judged_by_the_50_hz_model_after_resampling() -> None:
    gate = load_any_classifier(GATE_CLASSIFIER)
    for model in (gate, load_classifier(V1_CLASSIFIER)):
        fast = [np.asarray(_pothole_window(s, rate_hz=100)) for s in range(3)]
        slow = [resample(w, from_hz=100.0, to_hz=50.0) for w in fast]
        assert [w.size for w in slow] == [(w.size + 1) // 2 for w in fast]
        direct = model.predict_proba(fast, rate_hz=100.0)
        assert np.allclose(direct, model.predict_proba(slow))
    analysis = analyse_window(
        _phone_pothole_window(0, rate_hz=100), rate_hz=100, speed_mps=10.0, vehicle_class="car"
    )
    live = default_classifier()
    assert live is not None  # the gate and its short model: events name both
    assert any(e.reported and e.model == live.model_id for e in analysis.events)


def _phone_pothole_window(seed: int, rate_hz: int = RATE_HZ) -> list[float]:
    """4 s of a phone ride at 10 m/s over a 6 cm pothole 30 m in (the simulators' cabin
    response)."""
    profile = generate_road_profile(
        length_m=60.0,
        seed=seed,
        gd_n0_m3=estimate_gd_n0_for_iri(1.5),
        anomalies=(Anomaly("pothole", 30.0, 0.8, 0.06),),
    )
    ride = simulate_phone_ride(
        profile,
        speed_mps=10.0,
        rate_hz=rate_hz,
        car=get_vehicle("car"),
        noise_std_mps2=0.05,
        seed=seed,
        cabin=CABIN,
    )
    return [float(v) for v in ride.acc_z_mps2[: 4 * rate_hz]]


def test_the_gate_model_calls_a_phone_recorded_pothole_a_pothole_and_its_label_decides() -> None:
    gate = load_any_classifier(GATE_CLASSIFIER)
    analysis = analyse_window(
        _phone_pothole_window(0),
        rate_hz=RATE_HZ,
        speed_mps=10.0,
        vehicle_class="car",
        classifier=gate,
    )
    (event,) = analysis.events
    assert event.model == gate.model_id and event.label_decides
    assert event.surface == "potholes" and event.reported
    # A label other than "potholes" is no report, whatever the direction of the first excursion
    bump = replace(event, surface="metal_bumps")
    assert bump.kind == "pothole" and bump.p_anomaly and bump.p_anomaly >= 0.5
    assert not bump.reported


def test_an_event_is_placed_where_the_wheel_meets_the_pothole_not_where_the_ringing_ends() -> None:
    """A phone rings for about a second after a pothole: the middle of the flagged samples lay
    2-3 m past it, the onset is at it (the pothole spans 29.6-30.4 m)."""
    for classifier in (None, load_any_classifier(V1_CLASSIFIER)):
        analysis = analyse_window(
            _phone_pothole_window(0),
            rate_hz=RATE_HZ,
            speed_mps=10.0,
            vehicle_class="car",
            classifier=classifier,
        )
        (event,) = analysis.events
        assert abs(event.offset_m - 30.0) <= 1.0, event
