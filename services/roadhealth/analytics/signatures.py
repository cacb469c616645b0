"""Simulated passes over one planted pothole or bump (or plain road), and the labelled gate
pieces cut from them.

A pass is a 100 m ISO 8608 road of 1-5.5 m/km with at most one anomaly 45-55 m in, driven by a
car, van or bus at 8-20 m/s: the ride over the plain road and the linear quarter-car's response
to the anomaly alone, so any cabin response (response.py) can be applied to the same draws.
bench/roadhealth_signatures.py compares their windows with real phone windows; the live gate's
model is trained on real windows plus the pieces of such passes (`labelled_gate_pieces`, with
draws of another seed than the bench's, so the bench's passes stay unseen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.profile import (
    draw_anomalies,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import get_vehicle, simulate_ride
from services.roadhealth.analytics.response import (
    WHEELBASE_M,
    CabinResponse,
    edge_strikes,
    plain_elevation,
)
from services.roadhealth.analytics.shocks import (
    SHOCK_THRESHOLD_MPS2,
    find_shocks,
    gate_piece,
    training_piece,
)

FloatArray = NDArray[np.float64]
PASS_LENGTH_M = 100.0
PASS_VEHICLES = ("car", "van", "bus")
# The surface class a simulated pass's piece is labelled with, by what was planted
PIECE_LABELS = {"pothole": "potholes", "bump": "asphalt_bumps", "plain": "regular_road"}
PIECE_CONTEXT_S = 2.0  # each side of the anomaly: the stretch the gate's piece is cut from
LIVE_WINDOW_S = 4  # a telemetry window as `make up` sends them, s


@dataclass(frozen=True)
class SimulatedPass:
    """One pass: the ride over plain road, the quarter-car's response to the anomaly alone, the
    rear axle's lag, the sample at the anomaly (or the road's middle) and a pit's edge strike
    (response.edge_strikes)."""

    plain: FloatArray
    shock: FloatArray
    lag: int
    centre: int
    rate_hz: float
    speed_mps: float
    strikes: FloatArray | None = None
    pothole: bool = False

    def acc(self, cabin: CabinResponse | None) -> FloatArray:
        """The whole ride as the phone records it (`cabin=None`: the quarter-car's spike)."""
        if cabin is None:
            return self.plain + self.shock
        scale = cabin.pothole_scale(self.speed_mps) if self.pothole else 1.0
        return self.plain + cabin.filter(
            scale * self.shock, rate_hz=self.rate_hz, lag_samples=self.lag, strikes=self.strikes
        )

    def around(self, cabin: CabinResponse | None, half_s: float) -> FloatArray:
        """`half_s` either side of the anomaly."""
        half = round(half_s * self.rate_hz)
        return self.acc(cabin)[max(0, self.centre - half) : self.centre + half]


def simulate_passes(
    kind: str, *, count: int, seed: int, rate_hz: float = 50.0
) -> tuple[SimulatedPass, ...]:
    """`count` passes over a planted `kind` ("pothole", "bump" or "plain"), reproducible from
    `seed`."""
    if kind not in PIECE_LABELS:
        raise ValueError(f"unknown pass kind {kind!r}; use one of {sorted(PIECE_LABELS)}")
    rng = np.random.default_rng(seed)
    holes, bumps = (1, 0) if kind == "pothole" else (0, 1) if kind == "bump" else (0, 0)
    out = []
    for k in range(count):
        anomalies = draw_anomalies(
            length_m=PASS_LENGTH_M,
            n_potholes=holes,
            n_bumps=bumps,
            rng=rng,
            margin_m=45,
            min_gap_m=10,
        )
        iri, speed = rng.uniform(1.0, 5.5), rng.uniform(8.0, 20.0)
        profile = generate_road_profile(
            length_m=PASS_LENGTH_M,
            seed=k,
            gd_n0_m3=estimate_gd_n0_for_iri(iri),
            anomalies=anomalies,
        )
        car = get_vehicle(PASS_VEHICLES[k % len(PASS_VEHICLES)])
        plain, full = (
            simulate_ride(
                elevation,
                spacing_m=profile.spacing_m,
                speed_mps=speed,
                rate_hz=rate_hz,
                car=car,
                seed=k,
            ).acc_z_mps2
            for elevation in (plain_elevation(profile), profile.elevation_m)
        )
        at = anomalies[0].position_m if anomalies else PASS_LENGTH_M / 2
        out.append(
            SimulatedPass(
                plain,
                full - plain,
                round(WHEELBASE_M.get(car.name, 2.7) / speed * rate_hz),
                round(at / speed * rate_hz),
                rate_hz,
                speed,
                edge_strikes(
                    profile, n_samples=plain.size, speed_mps=speed, rate_hz=rate_hz, car=car
                ),
                kind == "pothole",
            )
        )
    return tuple(out)


def live_piece(
    acc: FloatArray, *, at: int, rate_hz: float, speed_mps: float, rng: np.random.Generator
) -> FloatArray:
    """The piece the live gate would judge of sample `at`: a telemetry window laid at a random
    phase over it, the shock in it nearest `at` (the window's largest excursion if none)."""
    size = round(LIVE_WINDOW_S * rate_hz)
    start = max(0, min(at - int(rng.integers(0, size)), acc.size - size))
    window = acc[start : start + size]
    shocks = find_shocks(
        window, rate_hz=rate_hz, speed_mps=speed_mps, threshold_mps2=SHOCK_THRESHOLD_MPS2
    )
    if not shocks:
        return training_piece(window, rate_hz=rate_hz)
    nearest = min(shocks, key=lambda s: abs(start + s.onset - at))
    return gate_piece(window, nearest.onset, rate_hz=rate_hz)


def labelled_gate_pieces(
    cabin: CabinResponse | None,
    *,
    count: int,
    seed: int,
    rate_hz: float = 50.0,
    live_per_pass: int = 1,
) -> tuple[list[FloatArray], list[str]]:
    """Pieces of each of `count` passes of each kind, labelled potholes, asphalt_bumps and
    regular_road: one cut as the gate cuts a labelled window (around its largest excursion's
    onset), and `live_per_pass` as the live gate cuts a telemetry window laid at a random phase
    over the anomaly (`live_piece`: the shock may sit anywhere in the window, or be cut by its
    edge: in half of a 4 s window's phases the piece is clamped to the window's start or end)."""
    pieces: list[FloatArray] = []
    labels: list[str] = []
    rng = np.random.default_rng(seed)
    for i, (kind, label) in enumerate(PIECE_LABELS.items()):
        for p in simulate_passes(kind, count=count, seed=seed + i, rate_hz=rate_hz):
            pieces.append(training_piece(p.around(cabin, PIECE_CONTEXT_S), rate_hz=rate_hz))
            acc = p.acc(cabin)
            pieces += [
                live_piece(acc, at=p.centre, rate_hz=rate_hz, speed_mps=p.speed_mps, rng=rng)
                for _ in range(live_per_pass)
            ]
            labels += [label] * (1 + live_per_pass)
    return pieces, labels
