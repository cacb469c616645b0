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


def one_period_statements(n: int, seed: int = 0, *, period: str = "2024") -> pd.DataFrame:
    """Return one plausible annual statement per synthetic SME (amounts in CNY, `sme` column).

    No USCCs, periods or labels: for rating throughput. SMEs with USCCs, several periods and a
    default label are `services.credit.demo.synthetic_statements`.
    """
    rng = np.random.default_rng(seed)
    total_assets = rng.lognormal(np.log(20e6), 1.0, n)
    current_assets = total_assets * rng.uniform(0.2, 0.8, n)
    equity = total_assets * rng.uniform(-0.1, 0.7, n)
    total_liabilities = total_assets - equity
    sales = total_assets * rng.lognormal(0.0, 0.5, n)
    interest = total_liabilities * rng.uniform(0.0, 0.06, n)
    net_profit = sales * rng.normal(0.03, 0.08, n)
    before_tax = np.where(net_profit > 0, net_profit * 1.25, net_profit)
    operating_profit = before_tax + interest
    inventory = current_assets * rng.uniform(0.1, 0.4, n)
    receivables = current_assets * rng.uniform(0.1, 0.4, n)
    operating_expenses = sales - operating_profit
    return pd.DataFrame(
        {
            "sme": [f"SME{i:06d}" for i in range(n)],
            "period": period,
            "currency": "CNY",
            "total_assets": total_assets,
            "current_assets": current_assets,
            "current_liabilities": total_liabilities * rng.uniform(0.7, 1.0, n),
            "total_liabilities": total_liabilities,
            "equity": equity,
            "sales": sales,
            "net_profit": net_profit,
            "inventory": inventory,
            "receivables": receivables,
            "cash": current_assets - inventory - receivables,
            "retained_earnings": equity * rng.uniform(-0.5, 0.8, n),
            "profit_before_tax": before_tax,
            "ebit": operating_profit,
            "operating_profit": operating_profit,
            "interest_expense": interest,
            "depreciation": total_assets * 0.03,
            "operating_expenses": operating_expenses,
            "cost_of_products_sold": sales * rng.uniform(0.8, 0.98, n),
            "total_costs": operating_expenses + interest,
        }
    )
