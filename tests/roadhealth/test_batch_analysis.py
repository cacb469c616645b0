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
