"""Condition alerts per segment-hour on `make up SIMULATE=1`'s scenario, before and after issue 15.

The simulator's four vehicles drive the 17 demo segments at four windows per second (as `smartcity
up --simulate` runs them); half-way through, one fair segment is roughened to poor
(`Network.roughen`). The windows' IRI estimates are the service's (`estimate_window_iri`) and every
batch (one window, as the gateway seals them at this rate) is judged with the service's own rule
(`assess.judge_segment`), each window on the segment it was driven on (map matching is scored
elsewhere). Each rule set sees the same windows:

- `before`: the rule before issue 15 (every threshold crossing is a change; all windows count);
- `after`: the shipped settings (margin, windows, vehicles, dwell; the newest 60 windows);
- `after_all_windows`: the same rules on all windows, to show why the estimate keeps only the
  newest (a deterioration then takes about as long as the history to show).

Alerts are counted as the service raises them: every class change of a classed segment and a
first class of poor. The roughened segment is left out of the rate and timed instead: the
delay from the roughening to its alert, in window time.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from iot_gateway.simulator import Fleet as SimFleet
from iot_gateway.simulator import Network
from services.roadhealth.assessment.condition import ChangeRules, Pending
from services.roadhealth.assessment.windows import estimate_window_iri
from services.roadhealth.runtime import Settings
from services.roadhealth.service.conditions import judge_segment
from smartcity.iot import SIM_DEVICES, SIM_RATE_PER_S, SIM_WINDOW_S, demo_network

Result = dict[str, Any]
SEEDS = (0, 1)
HOURS = 1.0
# Windows per ingested batch: the gateway seals a batch every 0.2 s, about one window at the
# demo's four windows per second
BATCH = 1
ROUGHENED = "harbour-rd-1"  # fair (about 2 m/km) on every seed's network
ROUGHENED_IRI = 4.0
T0 = 1_770_000_000.0
RULES = {
    "before": Settings(change=ChangeRules.immediate(), recent_windows=0),
    "after": Settings(),
    "after_all_windows": Settings(recent_windows=0),
}


@dataclass(frozen=True)
class Row:
    """A stored window as the condition rule reads it."""

    segment: str
    t0: float
    device: str
    iri: float
    iri_log_std: float
    speed_mps: float
    samples: int
    rate_hz: int


def drive(network: Network, *, hours: float, roughen_at_s: float) -> list[list[Row]]:
    """The simulator's windows in ingestion batches, the segment roughened at `roughen_at_s`."""
    fleet = SimFleet(network, seed=network.seed, window_s=SIM_WINDOW_S)
    classes = {d.id: d.vehicle_class for d in network.devices}
    step_s = 1.0 / SIM_RATE_PER_S
    batches: list[list[Row]] = [[]]
    for i in range(round(hours * 3600 / step_s)):
        if i == round(roughen_at_s / step_s):
            network.roughen(ROUGHENED, iri_m_per_km=ROUGHENED_IRI)
        message = fleet.next_message(T0 + i * step_s)
        p = json.loads(message.payload)
        iri, log_std = estimate_window_iri(
            p["acc_z"],
            rate_hz=p["rate_hz"],
            speed_mps=p["speed_mps"],
            vehicle_class=classes[p["device"]],
        )
        if iri is not None:
            segment = message.topic.split("/")[3]
            batches[-1].append(
                Row(
                    segment,
                    p["t0"],
                    p["device"],
                    iri,
                    log_std or 0.0,
                    p["speed_mps"],
                    len(p["acc_z"]),
                    p["rate_hz"],
                )
            )
        if len(batches[-1]) >= BATCH:
            batches.append([])
    return batches


def judge(batches: list[list[Row]], settings: Settings) -> list[tuple[float, str, str | None, str]]:
    """Replay the service's rule batch by batch: its alerts as (t0, segment, before, after)."""
    rows: dict[str, list[Row]] = defaultdict(list)
    condition: dict[str, str | None] = defaultdict(lambda: None)
    pending: dict[str, Pending | None] = defaultdict(lambda: None)
    alerts = []
    for batch in batches:
        for row in batch:
            rows[row.segment].append(row)
        for segment in sorted({r.segment for r in batch}):
            judged = judge_segment(
                settings=settings,
                current=condition[segment],
                pending=pending[segment],
                rows=rows[segment],
            )
            if judged is None:
                continue
            _estimate, decision, _recent = judged
            pending[segment] = decision.pending
            after = decision.change_to
            if after is None:
                continue
            before, condition[segment] = condition[segment], after
            if before is not None or after == "poor":
                alerts.append((max(r.t0 for r in batch), segment, before, after))
    return alerts


def bench_seed(seed: int, hours: float = HOURS) -> list[Result]:
    network = demo_network(city="bench", seed=seed, n_devices=SIM_DEVICES)
    roughen_at_s = hours * 3600 / 2
    batches = drive(network, hours=hours, roughen_at_s=roughen_at_s)
    change = network.changes[0]
    others = [s.id for s in network.segments if s.id != ROUGHENED]
    out = []
    for name, settings in RULES.items():
        alerts = judge(batches, settings)
        steady = [a for a in alerts if a[1] != ROUGHENED]
        changes = [a for a in steady if a[2] is not None]
        worse = [
            a for a in alerts if a[1] == ROUGHENED and a[3] == "poor" and a[0] >= T0 + roughen_at_s
        ]
        per_segment: dict[str, int] = defaultdict(int)
        for a in steady:
            per_segment[a[1]] += 1
        out.append(
            {
                "name": "condition_alerts_simulator",
                "rules": name,
                "seed": seed,
                "hours": hours,
                "segments": len(others),
                "windows": sum(len(b) for b in batches),
                "condition_alerts": len(steady),
                "alerts_per_segment_hour": round(len(steady) / (len(others) * hours), 3),
                "class_changes": len(changes),
                "changes_per_segment_hour": round(len(changes) / (len(others) * hours), 3),
                "first_poor": len(steady) - len(changes),
                "most_alerts_on_one_segment": max(per_segment.values(), default=0),
                "segment_with_most": max(per_segment, key=per_segment.__getitem__, default=None),
                "roughened": {**change, "at_s": roughen_at_s},
                "deterioration_alert_delay_s": (
                    round(worse[0][0] - T0 - roughen_at_s, 1) if worse else None
                ),
                "settings": _describe(settings),
            }
        )
    return out


def _describe(settings: Settings) -> Result:
    return {
        "margin": settings.change.margin,
        "min_windows": settings.change.min_windows,
        "min_vehicles": settings.change.min_vehicles,
        "min_dwell_s": settings.change.min_dwell_s,
        "recent_windows": settings.recent_windows or "all",
    }


def run() -> list[Result]:
    return [r for seed in SEEDS for r in bench_seed(seed)]


__all__ = ["RULES", "bench_seed", "drive", "judge", "run"]
