"""Population stability: same population is ok, a shifted one is flagged watch or act."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.credit.errors import DriftError
from services.credit.scoring.drift import drift_report, drift_status, population_stability


def test_status_thresholds() -> None:
    assert [drift_status(x) for x in (0.05, 0.1, 0.11, 0.25, 0.3)] == [
        "ok",
        "ok",
        "watch",
        "watch",
        "act",
    ]


def test_same_distribution_is_stable_and_shift_is_flagged() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(600, 50, 5000)
    assert population_stability(base, rng.normal(600, 50, 5000)) < 0.02
    assert drift_status(population_stability(base, rng.normal(620, 50, 5000))) == "watch"
    assert drift_status(population_stability(base, rng.normal(650, 50, 5000))) == "act"


def test_report_covers_scores_and_features_including_missing() -> None:
    rng = np.random.default_rng(2)
    base = pd.DataFrame({"score": rng.normal(600, 50, 2000), "Attr1": rng.normal(0, 1, 2000)})
    now = base.copy()
    now.loc[: len(now) // 2, "Attr1"] = np.nan
    report = {r.name: r for r in drift_report(base, now)}
    assert report["score"].status == "ok"
    assert report["Attr1"].status == "act"


def test_bad_input_is_named() -> None:
    with pytest.raises(DriftError, match="non-empty"):
        population_stability([], [1.0])
    with pytest.raises(DriftError, match="not in both"):
        drift_report(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}), columns=["a"])
