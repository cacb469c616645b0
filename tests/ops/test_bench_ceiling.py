"""The consensus bench's ceiling: one core's verification rate as the median of its timings."""

from __future__ import annotations

import statistics

from bench._ceiling import verification_ceiling


def test_the_ceiling_is_the_median_of_timings_reported_in_order() -> None:
    rate, samples = verification_ceiling(samples=5, seconds=0.02)
    assert len(samples) == 5
    assert samples == sorted(samples)
    assert rate == samples[2] == statistics.median(samples)
    assert all(s > 0 for s in samples)
