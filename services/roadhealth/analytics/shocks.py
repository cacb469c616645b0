"""Shocks in a window, located at their onset, and the piece of the window a classifier judges.

A shock is a run of samples that leave the window's own level (its median, not 1 g: phones are
not calibrated to gravity) by more than a threshold; samples closer than a few metres of travel
belong to one shock. It is located at the **onset** of its largest excursion, not the middle of
its flagged samples: a cabin-mounted phone rings for a second after the wheel's hit, so the
middle lies 2-3 m past the pothole along the direction of travel, and passes in opposite
directions fell 5-7 m apart. (Its first flagged sample, used before, could be a rough-road shock
20 m before the pothole on a poor road at speed, where flagged samples join into long runs.) Of
shocks that share a piece, only the largest is kept. The classic detectors' shocks
(`find_classic_shocks`, the version-1 rule) are placed at their first flagged sample.

The piece judged is 2 s starting 0.7 s before the onset (clamped to the window): about the
length of a labelled pothole window of Gonzalez et al. 2017, with the shock and its ringing in
it. A classifier is trained on the same pieces of labelled windows (`training_piece`: around the
onset of each window's largest excursion), so it judges what it learned from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.detectors import detect_z_diff, detect_z_thresh

FloatArray = NDArray[np.float64]
SHOCK_THRESHOLD_MPS2 = 1.5
PIECE_S = 2.0
PIECE_LEAD_S = 0.7
MIN_MERGE_M = 3.0
MERGE_S = 0.6  # flagged samples closer than this much travel (at least MIN_MERGE_M) are one shock
ONSET_SEARCH_S = 1.0
CLASSIC_HALF_SPAN_S = 0.4


@dataclass(frozen=True)
class Shock:
    """A located shock: its first flagged sample, the middle of its flagged samples, its
    largest deviation and whether its first half-peak excursion was downwards (a pothole's,
    on a linear car)."""

    onset: int
    middle: int
    peak_mps2: float
    downward: bool


def find_shocks(
    acc: FloatArray, *, rate_hz: float, speed_mps: float, threshold_mps2: float
) -> list[Shock]:
    """The window's shocks in order: samples that leave the window's median by more than the
    threshold; each located at the onset of its largest excursion (its first sample above half
    the peak in the second before it, as `largest_onset` cuts the training pieces): on a rough
    road at speed the flagged samples of several metres of road join into one run, whose first
    flagged sample may lie 20 m before the pothole that made its peak."""
    dev = acc - float(np.median(acc))
    out = []
    for run in _runs(np.abs(dev) > threshold_mps2, rate_hz=rate_hz, speed_mps=speed_mps):
        part = dev[run[0] : run[-1] + 1]
        at = int(np.argmax(np.abs(part)))
        peak = float(abs(part[at]))
        low = max(0, at - round(ONSET_SEARCH_S * rate_hz))
        onset = low + int(np.flatnonzero(np.abs(part[low : at + 1]) >= 0.5 * peak)[0])
        out.append(
            Shock(
                int(run[0]) + onset,
                (int(run[0]) + int(run[-1])) // 2,
                peak,
                bool(part[onset] < 0),
            )
        )
    return _largest_in_each_piece(out, np.abs(dev), rate_hz=rate_hz)


def may_hold_shocks(windows: list[FloatArray], *, threshold_mps2: float) -> list[bool]:
    """For each window, whether find_shocks could find a shock in it: any sample leaves its
    median by more than the threshold. The windows of one length are worked out together (a
    batch's windows mostly share one), each row's median and flags as find_shocks' own."""
    out = [False] * len(windows)
    by_size: dict[int, list[int]] = {}
    for i, acc in enumerate(windows):
        by_size.setdefault(acc.size, []).append(i)
    for size, rows in by_size.items():
        if size == 0:
            continue
        stack = np.stack([windows[i] for i in rows])
        dev = stack - np.median(stack, axis=1)[:, None]
        flagged = np.any(np.abs(dev) > threshold_mps2, axis=1)
        for i, flag in zip(rows, flagged.tolist(), strict=True):
            out[i] = bool(flag)
    return out


def _largest_in_each_piece(
    shocks: list[Shock], deviation: FloatArray, *, rate_hz: float
) -> list[Shock]:
    """The shocks that are the largest in their own piece, as gate_piece cuts it: a rough-road
    shock 0.7 s before a pothole has the pothole in its piece, so the classifier's "potholes"
    would be filed 10 m early. The piece is the one judged, clamped to the window: a road shock
    in a 4 s window's last 1.3 s is judged on the window's last 2 s, which may hold a pothole
    1.5-2 s before it (or a bus's rear axle meeting it), and was filed 28 m past it (issue 15,
    eighth session: a false pothole confirmed by 3 vehicles)."""
    kept = []
    for s in shocks:
        start, end = piece_bounds(deviation.size, s.onset, rate_hz=rate_hz)
        larger_onset = any(o.peak_mps2 > s.peak_mps2 and start <= o.onset <= end for o in shocks)
        if not larger_onset and float(deviation[start:end].max()) <= s.peak_mps2:
            kept.append(s)
    return kept


def find_classic_shocks(
    acc: FloatArray, *, rate_hz: float, speed_mps: float, threshold_mps2: float
) -> list[Shock]:
    """As find_shocks, with the classic detectors' flags (Z-THRESH from 1 g, Z-DIFF between
    samples; Mednis et al. 2011), size and direction from 0.4 s either side of the flagged
    samples' middle (as the shipped rule always judged them)."""
    flags = detect_z_thresh(acc, threshold_mps2=threshold_mps2) | detect_z_diff(
        acc, threshold_mps2=threshold_mps2
    )
    level = float(np.median(acc))
    half = max(1, round(CLASSIC_HALF_SPAN_S * rate_hz))
    out = []
    for run in _runs(flags, rate_hz=rate_hz, speed_mps=speed_mps):
        middle = round(0.5 * (float(run[0]) + float(run[-1])))
        dev = acc[max(0, middle - half) : min(acc.size, middle + half)] - level
        peak = float(np.abs(dev).max())
        first = int(np.flatnonzero(np.abs(dev) >= 0.5 * peak)[0])
        out.append(Shock(int(run[0]), middle, peak, bool(dev[first] < 0)))
    return out


def _runs(flags: NDArray[np.bool_], *, rate_hz: float, speed_mps: float) -> list[NDArray[np.intp]]:
    """Flagged samples closer than a few metres of travel, one array of indices per shock."""
    flagged = np.flatnonzero(flags)
    if flagged.size == 0:
        return []
    merge = max(MIN_MERGE_M, MERGE_S * speed_mps) / max(speed_mps, 1e-9) * rate_hz
    return list(np.split(flagged, np.flatnonzero(np.diff(flagged) > merge) + 1))


def piece_bounds(samples: int, onset: int, *, rate_hz: float) -> tuple[int, int]:
    """[start, end) of the 2 s a classifier judges around `onset` in a window of `samples`:
    from 0.7 s before it, clamped to the window (the whole window when shorter)."""
    size = round(PIECE_S * rate_hz)
    start = max(0, min(onset - round(PIECE_LEAD_S * rate_hz), samples - size))
    return start, min(samples, start + size)


def gate_piece(acc: FloatArray, onset: int, *, rate_hz: float) -> FloatArray:
    """The 2 s a classifier judges around a shock starting at `onset` (the whole window when
    shorter)."""
    start, end = piece_bounds(acc.size, onset, rate_hz=rate_hz)
    return np.asarray(acc[start:end], dtype=np.float64)


def largest_onset(acc: FloatArray, *, rate_hz: float) -> int:
    """Onset of a window's largest excursion: its first sample above half the peak in the
    second before the peak."""
    dev = np.abs(acc - float(np.median(acc)))
    peak = int(np.argmax(dev))
    low = max(0, peak - round(ONSET_SEARCH_S * rate_hz))
    return low + int(np.flatnonzero(dev[low : peak + 1] >= 0.5 * dev[peak])[0])


def training_piece(acc: FloatArray, *, rate_hz: float) -> FloatArray:
    """The piece of a labelled window that the live gate would judge: around its largest
    excursion's onset."""
    window = np.asarray(acc, dtype=np.float64)
    return gate_piece(window, largest_onset(window, rate_hz=rate_hz), rate_hz=rate_hz)
