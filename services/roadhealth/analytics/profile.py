"""Synthetic ISO 8608 road profiles with planted potholes and bumps, for scoring against truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.iri import compute_iri
from services.roadhealth.errors import AnalyticsError

AnomalyKind = Literal["pothole", "bump"]

# ISO 8608 displacement PSD at n0 = 0.1 cycle/m (geometric mean of each class), m^3.
ISO8608_GD_N0_M3: dict[str, float] = {cls: 16e-6 * 4.0**i for i, cls in enumerate("ABCDEFGH")}
ISO8608_N0_CYCLES_PER_M = 0.1
ISO8608_WAVINESS = 2.0
MIN_SPATIAL_FREQUENCY_CYCLES_PER_M = 0.01
MAX_SPATIAL_FREQUENCY_CYCLES_PER_M = 10.0
EDGE_LENGTH_M = 0.05
CLASS_A_IRI_M_PER_KM = 2.19  # mean IRI of class A profiles generated here, 0.05 m spacing


class ProfileError(AnalyticsError):
    """A road profile request that cannot be met (unknown class, bad length or spacing)."""


@dataclass(frozen=True)
class Anomaly:
    """A planted disruption: pothole (depression) or bump (raised), centred at position_m."""

    kind: AnomalyKind
    position_m: float
    length_m: float
    depth_m: float


@dataclass(frozen=True)
class RoadProfile:
    """Elevation sampled every spacing_m with the ground truth a scorer needs."""

    elevation_m: NDArray[np.float64]
    spacing_m: float
    gd_n0_m3: float
    anomalies: tuple[Anomaly, ...]
    iri_m_per_km: float

    @property
    def distance_m(self) -> NDArray[np.float64]:
        """Distance of each elevation sample from the start of the profile."""
        return np.arange(self.elevation_m.size, dtype=np.float64) * self.spacing_m

    @property
    def length_m(self) -> float:
        """Length covered by the samples."""
        return float((self.elevation_m.size - 1) * self.spacing_m)


def get_gd_n0_m3(roughness_class: str) -> float:
    """ISO 8608 PSD level Gd(n0) of a class letter A..H."""
    gd = ISO8608_GD_N0_M3.get(roughness_class.upper())
    if gd is None:
        raise ProfileError(f"unknown ISO 8608 class {roughness_class!r}; use one of A..H")
    return gd


def generate_iso8608_elevation(
    *, length_m: float, spacing_m: float, gd_n0_m3: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Random-phase elevation whose PSD is Gd(n0) (n/n0)^-2 between 0.01 and 10 cycle/m."""
    n_samples = round(length_m / spacing_m) + 1
    freq = np.fft.rfftfreq(n_samples, d=spacing_m)
    delta_n = 1.0 / (n_samples * spacing_m)
    n_max = min(MAX_SPATIAL_FREQUENCY_CYCLES_PER_M, 0.5 / spacing_m)
    band = (freq >= MIN_SPATIAL_FREQUENCY_CYCLES_PER_M) & (freq <= n_max)
    psd = np.zeros_like(freq)
    psd[band] = gd_n0_m3 * (freq[band] / ISO8608_N0_CYCLES_PER_M) ** -ISO8608_WAVINESS
    amplitude = np.sqrt(2.0 * psd * delta_n)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=freq.size)
    spectrum = 0.5 * n_samples * amplitude * np.exp(1j * phase)
    return np.fft.irfft(spectrum, n=n_samples)


def compute_anomaly_shape(anomaly: Anomaly, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Elevation change of one anomaly: a flat-bottomed pit with short ramps, or a cosine bump."""
    offset = np.abs(distance_m - anomaly.position_m)
    half = 0.5 * anomaly.length_m
    if anomaly.kind == "bump":
        inside = offset < half
        return np.where(inside, 0.5 * anomaly.depth_m * (1 + np.cos(np.pi * offset / half)), 0.0)
    edge = min(EDGE_LENGTH_M, 0.25 * anomaly.length_m)
    ramp = np.clip((half - offset) / edge, 0.0, 1.0)
    return -anomaly.depth_m * ramp


def plant_anomalies(
    elevation_m: NDArray[np.float64], spacing_m: float, anomalies: Sequence[Anomaly]
) -> NDArray[np.float64]:
    """Elevation with every anomaly added at its position."""
    distance = np.arange(elevation_m.size, dtype=np.float64) * spacing_m
    out = elevation_m.copy()
    for anomaly in anomalies:
        out += compute_anomaly_shape(anomaly, distance)
    return out


def draw_anomalies(
    *,
    length_m: float,
    n_potholes: int,
    n_bumps: int,
    rng: np.random.Generator,
    margin_m: float = 20.0,
    min_gap_m: float = 15.0,
) -> tuple[Anomaly, ...]:
    """Random potholes (2-8 cm deep, 0.3-1 m) and bumps (3-8 cm, 0.3-3 m), min_gap_m apart."""
    pothole: AnomalyKind = "pothole"
    bump: AnomalyKind = "bump"
    kinds = [pothole] * n_potholes + [bump] * n_bumps
    positions = _draw_spaced_positions(len(kinds), length_m, margin_m, min_gap_m, rng)
    order = rng.permutation(len(kinds))
    out = []
    for pos, i in zip(positions, order, strict=True):
        kind = kinds[i]
        if kind == "pothole":
            out.append(Anomaly(kind, pos, rng.uniform(0.3, 1.0), rng.uniform(0.02, 0.08)))
        else:
            out.append(Anomaly(kind, pos, rng.uniform(0.3, 3.0), rng.uniform(0.03, 0.08)))
    return tuple(sorted(out, key=lambda a: a.position_m))


def _draw_spaced_positions(
    count: int, length_m: float, margin_m: float, min_gap_m: float, rng: np.random.Generator
) -> list[float]:
    """Sorted positions in [margin, length - margin] at least min_gap_m apart."""
    if count == 0:
        return []
    free_m = length_m - 2 * margin_m - (count - 1) * min_gap_m
    if free_m < 0:
        raise ProfileError(f"{count} anomalies {min_gap_m} m apart do not fit in {length_m} m")
    slack = np.sort(rng.uniform(0.0, free_m, size=count))
    return [float(margin_m + s + i * min_gap_m) for i, s in enumerate(slack)]


def generate_road_profile(
    *,
    length_m: float,
    seed: int,
    roughness_class: str = "B",
    gd_n0_m3: float | None = None,
    spacing_m: float = 0.05,
    anomalies: Sequence[Anomaly] = (),
) -> RoadProfile:
    """A seeded ISO 8608 profile (class or explicit Gd(n0)) with anomalies and its true IRI."""
    if length_m < 20.0 or not 0.0 < spacing_m <= 0.25:
        raise ProfileError("need length_m >= 20 and 0 < spacing_m <= 0.25")
    gd = get_gd_n0_m3(roughness_class) if gd_n0_m3 is None else gd_n0_m3
    rng = np.random.default_rng(seed)
    base = generate_iso8608_elevation(length_m=length_m, spacing_m=spacing_m, gd_n0_m3=gd, rng=rng)
    elevation = plant_anomalies(base, spacing_m, anomalies)
    iri = compute_iri(elevation, spacing_m)
    return RoadProfile(elevation, spacing_m, gd, tuple(anomalies), iri)


def estimate_gd_n0_for_iri(iri_m_per_km: float) -> float:
    """ISO 8608 Gd(n0) whose profiles have about this IRI (IRI grows with the root of Gd)."""
    return ISO8608_GD_N0_M3["A"] * (iri_m_per_km / CLASS_A_IRI_M_PER_KM) ** 2
