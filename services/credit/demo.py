"""Synthetic SMEs with statements and a known default structure, for demos, tests and benchmarks.

Each SME gets a latent financial health; profitability, leverage and liquidity follow it, and the
default label is drawn from it, so a model trained on the ratios has something real to learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.credit.scoring.features import POLISH_FEATURES, polish_attributes
from services.credit.statements import AMOUNT_COLUMNS
from services.credit.uscc import make_uscc

PERIODS = ("2021", "2022", "2023")


def demo_uscc(index: int, *, division: str = "110108") -> str:
    """A valid USCC for synthetic SME number `index`."""
    return make_uscc(f"{index:08d}", division=division)


def synthetic_statements(
    n: int, *, seed: int = 0, periods: tuple[str, ...] = PERIODS, division: str = "110108"
) -> pd.DataFrame:
    """One row per SME and period: uscc, period, currency, unit, the amounts, and `default`."""
    rng = np.random.default_rng(seed)
    health = rng.normal(0, 1, n)
    assets = rng.lognormal(9.0, 1.0, n)  # thousands of CNY
    rows = []
    for t, period in enumerate(periods):
        growth = np.exp(rng.normal(0.03 + 0.04 * health, 0.08) * (t + 1))
        total_assets = assets * growth
        debt_ratio = np.clip(0.55 - 0.18 * health + rng.normal(0, 0.08, n), 0.05, 1.4)
        total_liabilities = total_assets * debt_ratio
        current_assets = total_assets * np.clip(rng.uniform(0.3, 0.7, n), 0, 1)
        current_liabilities = total_liabilities * np.clip(rng.uniform(0.4, 0.9, n), 0, 1)
        sales = total_assets * np.clip(rng.lognormal(0.1, 0.4, n), 0.05, None)
        margin = 0.04 + 0.04 * health + rng.normal(0, 0.03, n)
        net_profit = sales * margin
        rows.append(
            pd.DataFrame(
                {
                    "uscc": [demo_uscc(i, division=division) for i in range(n)],
                    "period": period,
                    "currency": "CNY",
                    "unit": "thousands",
                    "total_assets": total_assets,
                    "current_assets": current_assets,
                    "current_liabilities": current_liabilities,
                    "total_liabilities": total_liabilities,
                    "equity": total_assets - total_liabilities,
                    "sales": sales,
                    "net_profit": net_profit,
                    "profit_before_tax": net_profit * 1.25,
                    "ebit": net_profit * 1.25 + total_liabilities * 0.03,
                    "operating_profit": net_profit * 1.3,
                    "interest_expense": total_liabilities * 0.03,
                    "inventory": current_assets * rng.uniform(0.1, 0.4, n),
                    "receivables": current_assets * rng.uniform(0.2, 0.4, n),
                    "cash": current_assets * rng.uniform(0.05, 0.3, n),
                    "retained_earnings": (total_assets - total_liabilities) * 0.4,
                    "share_capital": np.abs(total_assets - total_liabilities) * 0.3,
                    "profit_on_sales": sales * (margin + 0.02),
                    "depreciation": total_assets * 0.04,
                    "cost_of_products_sold": sales * (1 - margin - 0.1),
                    "operating_expenses": sales * 0.1,
                    "total_costs": sales * (1 - margin),
                    "default": (rng.uniform(size=n) < 1 / (1 + np.exp(3.2 + 1.6 * health))),
                }
            )
        )
    frame = pd.concat(rows).sort_values(["uscc", "period"], kind="stable").reset_index(drop=True)
    frame["default"] = frame.groupby("uscc")["default"].transform("last").astype(int)
    return frame


def statement_csv(frame: pd.DataFrame, uscc: str) -> bytes:
    """One SME's statements as the CSV it would upload."""
    columns = ["period", "currency", "unit", *[c for c in AMOUNT_COLUMNS if c in frame]]
    mine = frame[frame["uscc"] == uscc]
    return mine[columns].round(3).to_csv(index=False).encode()


def latest_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Attr1..Attr64 of each SME's latest period, computed for all SMEs in one pass.

    Rows are sorted by SME then period, so the lagged ratios (sales growth, 3-year profit) of
    an SME's last period look only at its own earlier periods when it has len(PERIODS) of them.
    """
    scaled = frame.copy()
    for column in AMOUNT_COLUMNS:
        if column in scaled:
            scaled[column] = scaled[column].round(3) * 1000.0
    attributes = polish_attributes(scaled.drop(columns=["uscc"]))
    attributes.index = scaled["uscc"].to_numpy()
    last = ~scaled["uscc"].duplicated(keep="last").to_numpy()
    return attributes[last]


def training_frame(n: int, *, seed: int = 0) -> pd.DataFrame:
    """Attr1..Attr64 of each SME's latest period with its 0/1 `class` label."""
    frame = synthetic_statements(n, seed=seed)
    features = latest_features(frame)
    labels = frame.groupby("uscc", sort=False)["default"].last()
    out = features.reset_index(drop=True)[list(POLISH_FEATURES)]
    out["class"] = labels.loc[features.index].to_numpy()
    return out
