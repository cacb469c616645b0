"""Synthetic SME ratio data with a known risk structure, for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Return Attr1 (ROA), Attr2 (debt ratio), Attr4 (current ratio), noise and a 0/1 `class`.

    Low profitability, high leverage and low liquidity raise the probability of default; about
    5% of current ratios are missing.
    """
    rng = np.random.default_rng(seed)
    roa = rng.normal(0.05, 0.1, n)
    leverage = rng.uniform(0.1, 1.2, n)
    liquidity = rng.lognormal(0.3, 0.5, n)
    noise = rng.normal(0, 1, n)
    logit = -3.2 - 12 * roa + 3.0 * (leverage - 0.6) - 0.8 * np.log(liquidity)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {"Attr1": roa, "Attr2": leverage, "Attr4": liquidity, "noise": noise, "class": label}
    )
    frame.loc[rng.uniform(size=n) < 0.05, "Attr4"] = np.nan
    return frame
