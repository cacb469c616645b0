"""The live pothole gate on the simulator's fleet: the shipped rule against the version-2 gate.

`make up SIMULATE=1`'s scenario for 12 minutes (bench/roadhealth_service.py's long run: four
vehicles lap the 17 demo segments, each pothole driven over about 28 times), scored one to one
within 5 m against the planted potholes, for each signature and gate:

- signatures: the quarter-car's own spike (the simulators' default), the phone ride with the
  hand-set cabin response (analytics/response.py `CABIN`), and the phone ride with the response
  whose potholes the gate's model calls potholes most often (`CLASSIFIER_FIT_CABIN`);
- gates: the shipped version-1 model (classic 3 m/s^2 detectors, a downward event it does not
  call plain road) and the version-2 gate model (shocks 1.5 m/s^2 from the window's median, the
  model's label decides; analysis.py), both placing events at their onset.

Each run is about two minutes on this machine; `BENCH_GATE_SEEDS` (default "0,1,2") picks the
seeds.
"""

from __future__ import annotations

import os
from typing import Any

from bench.roadhealth_service import bench_long_run
from services.roadhealth.analytics.response import CABIN, CLASSIFIER_FIT_CABIN, CabinResponse
from services.roadhealth.assessment.windows import GATE_CLASSIFIER

Result = dict[str, Any]
SEEDS = tuple(int(s) for s in os.environ.get("BENCH_GATE_SEEDS", "0,1,2").split(","))
SIGNATURES: dict[str, CabinResponse | None] = {
    "quarter_car": None,
    "phone_hand_set": CABIN,
    "phone_classifier_fit": CLASSIFIER_FIT_CABIN,
}
GATES = {"v1_shipped": "shipped", "v2_gate": str(GATE_CLASSIFIER)}


def run() -> list[Result]:
    out = []
    for signatures, cabin in SIGNATURES.items():
        for seed in SEEDS:
            rows = bench_long_run(seed, cabin=cabin, models=tuple(GATES.values()))
            for gate, row in zip(GATES, rows, strict=True):
                out.append(
                    {**row, "name": "live_gate_fleet", "signatures": signatures, "gate": gate}
                )
    return out
