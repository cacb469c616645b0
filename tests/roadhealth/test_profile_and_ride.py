"""ISO 8608 profiles and quarter-car rides behave as a road and a vehicle would."""

import numpy as np
import pytest
from scipy import signal

from services.roadhealth.analytics.profile import (
    Anomaly,
    ProfileError,
    estimate_gd_n0_for_iri,
    generate_road_profile,
    get_gd_n0_m3,
)
from services.roadhealth.analytics.quartercar import (
    GRAVITY_MPS2,
    VEHICLE_CLASSES,
    UnknownVehicleClass,
    get_vehicle,
    simulate_ride,
)


def test_same_seed_same_profile_and_rougher_classes_have_higher_iri() -> None:
    a = generate_road_profile(length_m=500.0, seed=4, roughness_class="A")
    assert np.array_equal(
        a.elevation_m,
        generate_road_profile(length_m=500.0, seed=4, roughness_class="A").elevation_m,
    )
    iris = [
        generate_road_profile(length_m=500.0, seed=4, roughness_class=c).iri_m_per_km for c in "ABC"
    ]
    # IRI grows with the square root of the PSD: x2 per ISO 8608 class.
    assert iris[1] / iris[0] == pytest.approx(2.0, rel=0.01)
    assert iris[2] / iris[1] == pytest.approx(2.0, rel=0.01)


def test_profile_psd_follows_iso_8608() -> None:
    profile = generate_road_profile(length_m=2000.0, seed=2, roughness_class="C")
    freq, psd = signal.welch(profile.elevation_m, fs=1 / profile.spacing_m, nperseg=8192)
    band = (freq > 0.05) & (freq < 2.0)
    fitted = np.exp(np.mean(np.log(psd[band] * (freq[band] / 0.1) ** 2)))
    assert fitted == pytest.approx(get_gd_n0_m3("C"), rel=0.2)


@pytest.mark.parametrize("target", [1.0, 2.0, 4.0])
def test_profiles_can_be_made_for_a_target_iri(target: float) -> None:
    gd = estimate_gd_n0_for_iri(target)
    profile = generate_road_profile(length_m=1000.0, seed=11, gd_n0_m3=gd)
    assert profile.iri_m_per_km == pytest.approx(target, rel=0.2)


def test_planted_pothole_is_in_the_profile_and_the_truth() -> None:
    hole = Anomaly("pothole", 50.0, 0.6, 0.05)
    profile = generate_road_profile(length_m=100.0, seed=1, anomalies=[hole])
    plain = generate_road_profile(length_m=100.0, seed=1)
    change = profile.elevation_m - plain.elevation_m
    assert change.min() == pytest.approx(-0.05)
    assert profile.distance_m[np.argmin(change)] == pytest.approx(50.0, abs=0.3)
    assert profile.anomalies == (hole,)
    assert profile.iri_m_per_km > plain.iri_m_per_km


def test_bad_profile_requests_are_refused() -> None:
    with pytest.raises(ProfileError):
        generate_road_profile(length_m=100.0, seed=1, roughness_class="Z")
    with pytest.raises(UnknownVehicleClass):
        get_vehicle("tram")


def test_ride_on_a_smooth_road_reads_gravity_plus_noise() -> None:
    ride = simulate_ride(np.zeros(4001), spacing_m=0.05, speed_mps=10.0, rate_hz=100)
    assert ride.acc_z_mps2.size == 2000
    assert ride.acc_z_mps2.mean() == pytest.approx(GRAVITY_MPS2, abs=0.01)
    assert ride.acc_z_mps2.std() == pytest.approx(0.05, rel=0.1)


def test_rougher_roads_and_higher_speeds_shake_more() -> None:
    def rms(iri: float, speed: float) -> float:
        p = generate_road_profile(length_m=300.0, seed=5, gd_n0_m3=estimate_gd_n0_for_iri(iri))
        r = simulate_ride(
            p.elevation_m, spacing_m=0.05, speed_mps=speed, car=VEHICLE_CLASSES["car"]
        )
        return float(r.acc_z_mps2.std())

    assert rms(4.0, 15.0) > 1.7 * rms(2.0, 15.0)
    assert rms(2.0, 25.0) > rms(2.0, 10.0)


def test_pothole_shows_as_a_spike_when_the_wheel_reaches_it() -> None:
    hole = Anomaly("pothole", 60.0, 0.5, 0.05)
    p = generate_road_profile(
        length_m=120.0, seed=3, gd_n0_m3=estimate_gd_n0_for_iri(1.0), anomalies=[hole]
    )
    ride = simulate_ride(p.elevation_m, spacing_m=0.05, speed_mps=12.0, rate_hz=50)
    peak_t = ride.t_s[np.argmax(np.abs(ride.acc_z_mps2 - GRAVITY_MPS2))]
    assert peak_t == pytest.approx(60.0 / 12.0, abs=0.3)


def test_bus_body_bounces_slower_than_a_car() -> None:
    p = generate_road_profile(length_m=2000.0, seed=8, roughness_class="B")

    def body_hz(name: str) -> float:
        r = simulate_ride(
            p.elevation_m,
            spacing_m=0.05,
            speed_mps=20.0,
            car=VEHICLE_CLASSES[name],
            noise_std_mps2=0.0,
        )
        freq, psd = signal.welch(r.acc_z_mps2, fs=50, nperseg=1024)
        low = freq < 4
        return float(freq[low][np.argmax(psd[low])])

    assert body_hz("bus") < body_hz("car")
