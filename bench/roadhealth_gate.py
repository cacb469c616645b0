"""The live pothole gate on the simulator's fleet: the version-1 rule against the version-2 gate.

`make up SIMULATE=1`'s scenario for 12 minutes (bench/roadhealth_service.py's long run: four
vehicles lap the 17 demo segments, each pothole driven over about 28 times), scored one to one
within 5 m against the planted potholes, for each signature and gate:

- signatures: the phone ride with the simulators' cabin response (analytics/response.py
  `CABIN`, the default since issue 15) and the quarter-car's own spike (the default before);
- gates: the version-1 model (classic 3 m/s^2 detectors, a downward event it does not call
  plain road; `V1_CLASSIFIER`, the live default before issue 15) and the live version-2 gate
  (shocks 1.5 m/s^2 from the window's median, the model's label decides; `GATE_CLASSIFIER`),
  both placing events at their onset.

Each run is a few minutes on this machine; `BENCH_GATE_SEEDS` (default "0,1,2") picks the seeds
and `BENCH_GATE_SIGNATURES` (default "phone,quarter_car") the signatures.
"""

from __future__ import annotations

import os
from typing import Any

from bench.roadhealth_service import bench_long_run
from services.roadhealth.analytics.response import CABIN, CabinResponse
from services.roadhealth.assessment.windows import GATE_CLASSIFIER, V1_CLASSIFIER

Result = dict[str, Any]
SEEDS = tuple(int(s) for s in os.environ.get("BENCH_GATE_SEEDS", "0,1,2").split(","))
SIGNATURES: dict[str, CabinResponse | None] = {"phone": CABIN, "quarter_car": None}
CHOSEN = os.environ.get("BENCH_GATE_SIGNATURES", ",".join(SIGNATURES)).split(",")
GATES = {"v1": str(V1_CLASSIFIER), "v2_gate": str(GATE_CLASSIFIER)}


def run() -> list[Result]:
    out = []
    for signatures in CHOSEN:
        for seed in SEEDS:
            rows = bench_long_run(seed, cabin=SIGNATURES[signatures], models=tuple(GATES.values()))
            for gate, row in zip(GATES, rows, strict=True):
                out.append(
                    {**row, "name": "live_gate_fleet", "signatures": signatures, "gate": gate}
                )
    return out
