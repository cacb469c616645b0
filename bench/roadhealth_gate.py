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

First, the live gate's CPU per judged shock (`live_gate_cpu`): the shocks of the same fleet's
4 s and 1 s windows, each window's pieces judged with one predict as ingestion judges them,
process CPU time.

Each fleet run is a few minutes on this machine; `BENCH_GATE_SEEDS` (default "0,1,2,3,4")
picks the seeds and `BENCH_GATE_SIGNATURES` (default "phone,quarter_car") the signatures.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from bench.roadhealth_service import bench_long_run
from iot_gateway.simulator import Fleet
from services.roadhealth.analytics.ensemble import load_any_classifier
from services.roadhealth.analytics.response import CABIN, CabinResponse
from services.roadhealth.analytics.shocks import SHOCK_THRESHOLD_MPS2, find_shocks, gate_piece
from services.roadhealth.assessment.windows import GATE_CLASSIFIER, V1_CLASSIFIER
from smartcity.iot import demo_network

Result = dict[str, Any]
SEEDS = tuple(int(s) for s in os.environ.get("BENCH_GATE_SEEDS", "0,1,2,3,4").split(","))
SIGNATURES: dict[str, CabinResponse | None] = {"phone": CABIN, "quarter_car": None}
CHOSEN = os.environ.get("BENCH_GATE_SIGNATURES", ",".join(SIGNATURES)).split(",")
GATES = {"v1": str(V1_CLASSIFIER), "v2_gate": str(GATE_CLASSIFIER)}
CPU_FLEET_SECONDS = 800 * 4  # of driving by the 4 vehicles together


def _fleet_pieces(window_s: float) -> tuple[int, list[list[Any]]]:
    """The fleet's windows over CPU_FLEET_SECONDS and each one's gate pieces (windows with
    shocks only)."""
    fleet = Fleet(demo_network(city="bench", seed=0, n_devices=4), seed=0, window_s=window_s)
    windows = round(CPU_FLEET_SECONDS / window_s)
    pieces = []
    for i in range(windows):
        payload = json.loads(fleet.next_message(float(i)).payload)
        acc = np.asarray(payload["acc_z"], dtype=np.float64)
        shocks = find_shocks(
            acc,
            rate_hz=50.0,
            speed_mps=payload["speed_mps"],
            threshold_mps2=SHOCK_THRESHOLD_MPS2,
        )
        if shocks:
            pieces.append([gate_piece(acc, s.onset, rate_hz=50.0) for s in shocks])
    return windows, pieces


def bench_gate_cpu() -> list[Result]:
    """CPU per judged shock of the live gate model, one predict per window's pieces."""
    model = load_any_classifier(GATE_CLASSIFIER)
    out = []
    for window_s in (4.0, 1.0):
        windows, pieces = _fleet_pieces(window_s)
        shocks = sum(len(p) for p in pieces)
        model.predict_proba(pieces[0], rate_hz=50.0)  # warm: masks of this piece length
        start = time.process_time()
        for window_pieces in pieces:
            model.predict_proba(window_pieces, rate_hz=50.0)
        cpu_s = time.process_time() - start
        out.append(
            {
                "name": "live_gate_cpu",
                "gate_model": model.model_id,
                "window_s": window_s,
                "windows": windows,
                "shocks": shocks,
                "shocks_per_window": round(shocks / windows, 3),
                "ms_per_shock": round(1e3 * cpu_s / shocks, 3),
                "ms_per_window": round(1e3 * cpu_s / windows, 3),
                "load": os.getloadavg()[0],
            }
        )
    return out


def run() -> list[Result]:
    out = bench_gate_cpu()
    for signatures in CHOSEN:
        for seed in SEEDS:
            rows = bench_long_run(seed, cabin=SIGNATURES[signatures], models=tuple(GATES.values()))
            for gate, row in zip(GATES, rows, strict=True):
                out.append(
                    {**row, "name": "live_gate_fleet", "signatures": signatures, "gate": gate}
                )
    return out
