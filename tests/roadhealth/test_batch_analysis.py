"""A batch's windows are analysed together (one classifier call for all their events): each
window must come out exactly as when analysed alone, whatever else shares its batch."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from iot_gateway.simulator import Fleet
from services.roadhealth.assessment.windows import (
    WindowAnalysis,
    WindowInput,
    analyse_window,
    analyse_windows,
    default_classifier,
)
from smartcity.iot import demo_network

T0 = 1_770_000_000.0


def _windows(n: int) -> list[WindowInput]:
    network = demo_network(city="test", seed=3, n_devices=8)
    fleet = Fleet(network, seed=3, window_s=4.0)
    out = []
    for i in range(n):
        p = json.loads(fleet.next_message(T0 + 0.5 * i).payload)
        out.append(WindowInput(p["acc_z"], p["rate_hz"], p["speed_mps"], "car"))
    # A 100 Hz window with events (resampled by the classifier) and a too-slow one
    bumpy = next(w for w in out if analyse_window(**vars(w), classifier=None).events)
    fast = np.repeat(np.asarray(bumpy.acc_z), 2).tolist()
    return [*out, replace(bumpy, acc_z=fast, rate_hz=100), replace(bumpy, speed_mps=1.0)]


def _view(analysis: WindowAnalysis) -> tuple[float | None, list[dict[str, object]]]:
    iri = None if analysis.iri is None else round(analysis.iri, 9)
    return iri, [e.as_json() for e in analysis.events]


def _located(analysis: WindowAnalysis) -> list[tuple[object, ...]]:
    """Where and what each event is, exactly: its place, kind, size and label."""
    return [(e.offset_m, e.middle_m, e.kind, e.peak_mps2, e.surface) for e in analysis.events]


def test_a_batch_analysed_together_matches_each_window_alone() -> None:
    windows = _windows(60)
    together = analyse_windows(windows, classifier=default_classifier())
    alone = [
        analyse_window(
            w.acc_z,
            rate_hz=w.rate_hz,
            speed_mps=w.speed_mps,
            vehicle_class=w.vehicle_class,
            classifier=default_classifier(),
        )
        for w in windows
    ]
    assert [_view(a) for a in together] == [_view(a) for a in alone]
    # The batch has events to judge, at both rates, and reports among them
    judged = [e for a in together for e in a.events if e.surface is not None]
    assert len({a.events[0].model for a in together if a.events}) == 1
    assert judged and any(e.reported for e in judged)
    assert together[-2].events and together[-1].events == ()


def test_one_second_windows_together_are_exactly_each_alone() -> None:
    # The live 1 s case: most windows hold no shock and are passed over together
    # (shocks.may_hold_shocks); those that do, and every judged event, equal to the bit
    network = demo_network(city="test", seed=5, n_devices=40)
    fleet = Fleet(network, seed=5, window_s=1.0)
    windows = []
    for i in range(400):
        p = json.loads(fleet.next_message(T0 + 0.025 * i).payload)
        windows.append(WindowInput(p["acc_z"], p["rate_hz"], p["speed_mps"], "car"))
    windows.append(replace(windows[0], acc_z=list(windows[0].acc_z)[:30]))  # a shorter one
    together = analyse_windows(windows, classifier=default_classifier())
    alone = [analyse_window(**vars(w), classifier=default_classifier()) for w in windows]
    # (the classifier's probabilities of one piece alone and in a batch may differ in their
    # last bits: BLAS sums the heads' products in another order for another number of rows)
    assert [_view(a) for a in together] == [_view(a) for a in alone]
    assert [_located(a) for a in together] == [_located(a) for a in alone]
    with_events = sum(bool(a.events) for a in together)
    assert 0 < with_events < len(windows) // 2
