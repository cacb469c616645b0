"""Quarter-car model: Golden Car and vehicle classes, exact discretisation, simulated rides."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, signal

from services.roadhealth.errors import AnalyticsError

GRAVITY_MPS2 = 9.81
INTERNAL_OVERSAMPLE = 10

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class QuarterCar:
    """Quarter-car parameters per unit sprung mass, as ASTM E1926 states the Golden Car."""

    name: str
    tyre_k_per_s2: float  # kt / ms
    suspension_k_per_s2: float  # ks / ms
    suspension_c_per_s: float  # cs / ms
    unsprung_mass_ratio: float  # mu / ms
    tyre_footprint_m: float = 0.0  # length the tyre averages the profile over


GOLDEN_CAR = QuarterCar("golden", 653.0, 63.3, 6.0, 0.15)
VEHICLE_CLASSES: dict[str, QuarterCar] = {
    "golden": GOLDEN_CAR,
    # quarter masses and rates of a compact car, a loaded van and an air-sprung city bus
    "car": QuarterCar("car", 640.0, 64.0, 4.0, 0.14, tyre_footprint_m=0.15),
    "van": QuarterCar("van", 667.0, 66.7, 5.6, 0.133, tyre_footprint_m=0.18),
    "bus": QuarterCar("bus", 640.0, 40.0, 6.0, 0.16, tyre_footprint_m=0.25),
}


class UnknownVehicleClass(AnalyticsError):
    """A vehicle class name that has no parameters."""


def get_vehicle(vehicle_class: str) -> QuarterCar:
    """Parameters of a named vehicle class."""
    car = VEHICLE_CLASSES.get(vehicle_class)
    if car is None:
        known = ", ".join(sorted(VEHICLE_CLASSES))
        raise UnknownVehicleClass(f"unknown vehicle class {vehicle_class!r}; known: {known}")
    return car


def compute_state_space(car: QuarterCar) -> tuple[FloatArray, FloatArray]:
    """Continuous A, B for state [zs, zs', zu, zu'] driven by road elevation (or slope)."""
    k1, k2 = car.tyre_k_per_s2, car.suspension_k_per_s2
    c, mu = car.suspension_c_per_s, car.unsprung_mass_ratio
    a = np.array(
        [
            [0.0, 1.0, 0.0, 0.0],
            [-k2, -c, k2, c],
            [0.0, 0.0, 0.0, 1.0],
            [k2 / mu, c / mu, -(k1 + k2) / mu, -c / mu],
        ]
    )
    b = np.array([[0.0], [0.0], [0.0], [k1 / mu]])
    return a, b


def discretise(car: QuarterCar, dt_s: float) -> tuple[FloatArray, FloatArray]:
    """Exact zero-order-hold transition ST = e^(A dt) and input vector PR = A^-1 (ST - I) B."""
    a, b = compute_state_space(car)
    st = linalg.expm(a * dt_s)
    pr = linalg.solve(a, (st - np.eye(4)) @ b)
    return st, pr


def filter_state_space(
    st: FloatArray, pr: FloatArray, c_row: FloatArray, d: float, u: FloatArray
) -> FloatArray:
    """Output y_i = c x_i + d u_i of x_(i+1) = ST x_i + PR u_i from rest, mode by mode."""
    eigvals, modes = np.linalg.eig(st)
    beta = np.linalg.solve(modes, pr[:, 0].astype(np.complex128))
    gain = c_row @ modes
    out = d * u.astype(np.float64)
    for lam, b, g in zip(eigvals, beta, gain, strict=True):
        # Modal form stays well conditioned where a transfer function over all 4 poles would not.
        out = out + np.real(g * signal.lfilter([0.0, b], [1.0, -lam], u.astype(np.complex128)))
    return out


def smooth_moving_average(values: FloatArray, window: int) -> FloatArray:
    """Centred moving average over window samples, edges padded with the end values."""
    if window <= 1:
        return values
    padded = np.pad(values, (window // 2, window - 1 - window // 2), mode="edge")
    kernel = np.full(window, 1.0 / window)
    return np.convolve(padded, kernel, mode="valid")


@dataclass(frozen=True)
class Ride:
    """What a body-mounted sensor records on a profile: time, position, vertical acceleration."""

    t_s: FloatArray
    distance_m: FloatArray
    acc_z_mps2: FloatArray
    rate_hz: float
    speed_mps: float


def simulate_ride(
    elevation_m: FloatArray,
    *,
    spacing_m: float,
    speed_mps: float,
    rate_hz: float = 50.0,
    car: QuarterCar = GOLDEN_CAR,
    noise_std_mps2: float = 0.05,
    seed: int = 0,
) -> Ride:
    """Drive a profile at constant speed: body acceleration incl. gravity, plus sensor noise."""
    if speed_mps <= 0 or rate_hz <= 0:
        raise ValueError("speed_mps and rate_hz must be positive")
    footprint = max(1, round(car.tyre_footprint_m / spacing_m))
    road = smooth_moving_average(np.asarray(elevation_m, dtype=np.float64), footprint)
    internal_hz = rate_hz * INTERNAL_OVERSAMPLE
    length_m = (road.size - 1) * spacing_m
    n_out = int(length_m / speed_mps * rate_hz)
    n_internal = n_out * INTERNAL_OVERSAMPLE
    distance_internal = (np.arange(n_internal) + 0.5) * speed_mps / internal_hz
    road_at_t = np.interp(distance_internal, np.arange(road.size) * spacing_m, road)
    st, pr = discretise(car, 1.0 / internal_hz)
    a, _ = compute_state_space(car)
    # Starting at rest on the first elevation: constant input has zero body acceleration.
    acc_internal = filter_state_space(st, pr, a[1], 0.0, road_at_t - road_at_t[0])
    acc = signal.decimate(acc_internal, INTERNAL_OVERSAMPLE, ftype="fir", zero_phase=True)
    rng = np.random.default_rng(seed)
    acc_z = GRAVITY_MPS2 + acc + rng.normal(0.0, noise_std_mps2, size=acc.size)
    t_s = np.arange(acc_z.size) / rate_hz
    return Ride(t_s, t_s * speed_mps, acc_z, rate_hz, speed_mps)
