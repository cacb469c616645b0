"""The simulator's potholes can look like the ones phones record on real roads (issue 15).

Real pothole windows (Gonzalez et al. 2017) peak at about 4 m/s^2 over about a second, centred
near 3.4 Hz; the linear quarter-car alone makes a 0.1 s spike of 10+ m/s^2 near 10 Hz. The phone
ride (analytics/response.py) keeps the road's roughness as it was and reshapes the shock.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from services.roadhealth.analytics.profile import (
    Anomaly,
    estimate_gd_n0_for_iri,
    generate_road_profile,
)
from services.roadhealth.analytics.quartercar import get_vehicle
from services.roadhealth.analytics.response import CABIN, simulate_phone_ride

RATE_HZ = 50
SPEED_MPS = 12.0


def _rides(reverse: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    profile = generate_road_profile(
        length_m=100.0,
        seed=4,
        gd_n0_m3=estimate_gd_n0_for_iri(2.0),
        anomalies=(Anomaly("pothole", 50.0, 0.6, 0.05),),
    )
    rides = [
        simulate_phone_ride(
            profile,
            speed_mps=SPEED_MPS,
            rate_hz=RATE_HZ,
            car=get_vehicle("car"),
            noise_std_mps2=0.05,
            seed=1,
            reverse=reverse,
            cabin=cabin,
        ).acc_z_mps2
        for cabin in (CABIN, None)
    ]
    phone, spike = rides
    return phone, spike, round(50.0 / SPEED_MPS * RATE_HZ)


def _shape(window: np.ndarray) -> tuple[float, float, float]:
    dev = window - np.median(window)
    peak = float(np.abs(dev).max())
    above = np.flatnonzero(np.abs(dev) >= 0.3 * peak)
    freq, power = signal.welch(dev, fs=RATE_HZ, nperseg=64)
    return peak, (above[-1] - above[0] + 1) / RATE_HZ, float((freq * power).sum() / power.sum())


def test_a_pothole_in_a_phone_ride_has_the_amplitude_length_and_pitch_of_real_ones() -> None:
    phone, spike, at = _rides()
    peak, duration_s, centroid_hz = _shape(phone[at - RATE_HZ : at + RATE_HZ])
    assert 1.5 <= peak <= 8.0 and duration_s >= 0.5 and centroid_hz <= 6.0
    spike_peak, spike_s, spike_hz = _shape(spike[at - RATE_HZ : at + RATE_HZ])
    assert spike_peak > 2 * peak and spike_s < 0.3 and spike_hz > 7.0
    # Before the pothole the two rides are the same road, so IRI estimates do not change
    assert np.allclose(phone[: at - RATE_HZ], spike[: at - RATE_HZ])


def test_a_reversed_phone_ride_meets_the_pothole_from_the_other_end() -> None:
    phone, _spike, at = _rides(reverse=True)
    dev = np.abs(phone - np.median(phone))
    assert abs(int(np.argmax(dev)) - at) <= RATE_HZ  # 50 m from either end
