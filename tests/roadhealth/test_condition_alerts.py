"""Condition alerts are calm and still timely (issue 15).

A segment's class changes only on a sustained change
(services/roadhealth/assessment/condition.py): its IRI estimate must pass a threshold by a
margin and stay past it for several windows, vehicles and minutes. The simulator's vehicles
drive four demo segments, one of them within 2% of the fair/poor line, at the demo's traffic per
segment (a pass every half minute or so); half-way, a good segment is roughened to poor. The
calm segments must not flap, and the roughened one must alert within the stated ten minutes of
window time.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from iot_gateway.simulator import Fleet as SimFleet
from iot_gateway.simulator import Network
from services.roadhealth.assessment.condition import ChangeRules, Seen, decide_condition
from services.roadhealth.assessment.windows import Thresholds
from smartcity.iot import demo_network
from smartcity.roadhealth_harness import anchored_bodies, register_devices, running

T0 = 1_770_000_000.0
# Four segments and four vehicles at one window per 1.4 s: each segment sees a pass about every
# 25 s, as in `make up SIMULATE=1` (17 segments at four windows per second)
STEP_S = 1.4
BEFORE, AFTER = 400, 450  # windows before and after the roughening
ROUGHENED = "harbour-rd-2"
STATED_DELAY_S = 600.0  # docs/roadhealth.md: a sustained change alerts within ten minutes


def calm_network() -> Network:
    return demo_network(city="calm", seed=0, n_devices=4, n_segments=4)


@functools.cache
def fleet_messages() -> tuple[bytes, ...]:
    """The fleet's signed windows, roughening ROUGHENED half-way: the same for every backend
    (the simulator is seeded), so made once per process (a few CPU seconds)."""
    network = calm_network()
    fleet = SimFleet(network, seed=network.seed, window_s=4.0)
    messages = []
    for i in range(BEFORE + AFTER):
        if i == BEFORE:
            network.roughen(ROUGHENED, iri_m_per_km=4.0)
        messages.append(fleet.next_message(T0 + STEP_S * i).payload)
    return tuple(messages)


# Both backends on one worker, so the second reuses the first's fleet_messages()
@pytest.mark.slow
@pytest.mark.xdist_group("condition-alerts")
def test_calm_segments_do_not_flap_and_a_roughened_segment_alerts_in_time(
    tmp_path: Path, db_url: str
) -> None:
    network = calm_network()
    truth = {s.id: s.profile.iri_m_per_km for s in network.segments}
    assert abs(truth["central-ave-1"] / 2.68 - 1) < 0.02  # hovers at the fair/poor line
    assert truth[ROUGHENED] < 1.5
    payloads = [json.loads(message) for message in fleet_messages()]
    batches = [payloads[start : start + 10] for start in range(0, len(payloads), 10)]
    with running(tmp_path, db_url) as h:
        register_devices(h, network)
        # Anchored at once as a gateway anchors a backlog, then ingested one after the other
        for body in anchored_bodies(h.ledger, h.key("bsn-operator"), batches):
            answer = h.client.post(
                "/roadhealth/v1/ingest", json=body, headers=h.auth("bsn-operator")
            )
            assert answer.status_code == 200, answer.text
        alerts = h.client.get(
            "/roadhealth/v1/alerts", params={"limit": 1000}, headers=h.auth("road-authority")
        ).json()
    changes = [a for a in alerts if a["kind"] == "condition_changed"]
    calm = [a for a in changes if a["segment"] != ROUGHENED and a["data"]["before"] is not None]
    assert calm == [], [(a["segment"], a["data"]["before"], a["data"]["after"]) for a in calm]
    rough = sorted(
        (a["data"]["as_of_t0"], a["data"]["after"]) for a in changes if a["segment"] == ROUGHENED
    )
    roughened_at = T0 + STEP_S * BEFORE
    poor = [t for t, after in rough if after == "poor"]
    assert poor, rough
    assert poor[0] - roughened_at <= STATED_DELAY_S, (poor[0] - roughened_at, rough)
    assert all(t >= roughened_at for t, _ in rough), rough  # no alert while it was good
    assert len(rough) <= 2  # good -> poor, or good -> fair -> poor


def test_a_change_needs_the_margin_windows_vehicles_and_dwell() -> None:
    """Estimates crossing 2.68 m/km within the margin change nothing; past it, the change waits
    for 8 windows from 2 vehicles over 5 minutes; a return inside the margin cancels it."""
    rules, thresholds = ChangeRules(), Thresholds()
    seen: list[Seen] = []
    pending = None

    def step(iri: float, device: str) -> str | None:
        nonlocal pending
        seen.append(Seen(T0 + 30.0 * len(seen), device))
        decision = decide_condition(
            rules, thresholds, current="fair", iri=iri, pending=pending, windows=seen
        )
        pending = decision.pending
        return decision.change_to

    # Hovering around the line, inside the 8% margin: never a change
    assert [step(iri, "a") for iri in (2.6, 2.75, 2.65, 2.85, 2.7, 2.55) * 3] == [None] * 18
    # Past the margin, but one vehicle only: still no change, however long
    assert [step(3.1, "a") for _ in range(12)] == [None] * 12
    # A second vehicle confirms it: the change comes once it has lasted 5 minutes
    assert step(3.1, "b") == "poor"
    # Past the margin, then back inside it before the dwell: the pending change is dropped
    pending = None
    assert [step(3.2, d) for d in "ab"] == [None, None]
    assert step(2.7, "a") is None and pending is None
    # Old rule, for comparison: every crossing is a change
    immediate = ChangeRules.immediate()
    assert (
        decide_condition(
            immediate, thresholds, current="fair", iri=2.69, pending=None, windows=seen
        ).change_to
        == "poor"
    )
