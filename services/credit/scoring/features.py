"""Ratio features from validated statements, mapped to the 64 Polish bankruptcy ratios.

The default model is trained on the Polish companies bankruptcy data (UCI 365, Tomczak 2016),
whose features are `Attr1`..`Attr64`. `polish_attributes` computes each of them from a validated
statement table (see `statements`) so that model can rate an SME. Mapping notes:

- "gross profit" in the Polish ratios is profit before tax (zysk brutto): `profit_before_tax`.
- "short-term" and "current" liabilities are both `current_liabilities`; "constant capital" is
  equity + long-term liabilities; "financial expenses" and "interest" are `interest_expense`;
  unreported interest, extraordinary items and short-term securities count as zero where they
  are added to a profit or cash figure; "fixed assets" default to total minus current assets
  and "long-term liabilities" to total minus current liabilities, when not given.
- Attr21 (sales growth) needs the previous year (the period 1 year earlier; 4 quarters for
  quarterly files); Attr24 (3-year profit) needs the two previous years; otherwise missing.
- Attr29 is log10 of total assets and Attr55 is working capital, both in thousands of currency
  units (the scale those columns have in the Polish data); no currency conversion is made, so
  the two size features are only indicative for CNY statements.
- Where the published formula and the data disagree, the data wins (checked on the dev file):
  Attr52 is short-term liabilities / cost of products sold without the x365 (Attr32 / Attr52
  is exactly 365), and Attr41 is total liabilities / (operating profit + depreciation) x 12/365.
- Every ratio whose inputs are missing, or whose denominator is zero, is missing (NaN); the
  models handle missing values.

`standard_ratios` gives the same figures under familiar names grouped as liquidity, leverage,
profitability, activity and size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from services.credit.statements import AMOUNT_COLUMNS

Items = dict[str, pd.Series]
Formula = Callable[[Items], pd.Series]

# Attribute -> (meaning as published with the data, category).
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "Attr1": ("net profit / total assets", "profitability"),
    "Attr2": ("total liabilities / total assets", "leverage"),
    "Attr3": ("working capital / total assets", "liquidity"),
    "Attr4": ("current assets / short-term liabilities", "liquidity"),
    "Attr5": (
        "(cash + securities + receivables - short-term liabilities) / (opex - depreciation) * 365",
        "liquidity",
    ),
    "Attr6": ("retained earnings / total assets", "profitability"),
    "Attr7": ("EBIT / total assets", "profitability"),
    "Attr8": ("book value of equity / total liabilities", "leverage"),
    "Attr9": ("sales / total assets", "activity"),
    "Attr10": ("equity / total assets", "leverage"),
    "Attr11": (
        "(gross profit + extraordinary items + financial expenses) / total assets",
        "profitability",
    ),
    "Attr12": ("gross profit / short-term liabilities", "profitability"),
    "Attr13": ("(gross profit + depreciation) / sales", "profitability"),
    "Attr14": ("(gross profit + interest) / total assets", "profitability"),
    "Attr15": ("(total liabilities * 365) / (gross profit + depreciation)", "leverage"),
    "Attr16": ("(gross profit + depreciation) / total liabilities", "leverage"),
    "Attr17": ("total assets / total liabilities", "leverage"),
    "Attr18": ("gross profit / total assets", "profitability"),
    "Attr19": ("gross profit / sales", "profitability"),
    "Attr20": ("(inventory * 365) / sales", "activity"),
    "Attr21": ("sales (n) / sales (n-1)", "activity"),
    "Attr22": ("profit on operating activities / total assets", "profitability"),
    "Attr23": ("net profit / sales", "profitability"),
    "Attr24": ("gross profit (in 3 years) / total assets", "profitability"),
    "Attr25": ("(equity - share capital) / total assets", "leverage"),
    "Attr26": ("(net profit + depreciation) / total liabilities", "leverage"),
    "Attr27": ("profit on operating activities / financial expenses", "leverage"),
    "Attr28": ("working capital / fixed assets", "liquidity"),
    "Attr29": ("logarithm of total assets", "size"),
    "Attr30": ("(total liabilities - cash) / sales", "leverage"),
    "Attr31": ("(gross profit + interest) / sales", "profitability"),
    "Attr32": ("(current liabilities * 365) / cost of products sold", "activity"),
    "Attr33": ("operating expenses / short-term liabilities", "liquidity"),
    "Attr34": ("operating expenses / total liabilities", "leverage"),
    "Attr35": ("profit on sales / total assets", "profitability"),
    "Attr36": ("total sales / total assets", "activity"),
    "Attr37": ("(current assets - inventories) / long-term liabilities", "liquidity"),
    "Attr38": ("constant capital / total assets", "leverage"),
    "Attr39": ("profit on sales / sales", "profitability"),
    "Attr40": ("(current assets - inventory - receivables) / short-term liabilities", "liquidity"),
    "Attr41": ("total liabilities / ((operating profit + depreciation) * (12/365))", "leverage"),
    "Attr42": ("profit on operating activities / sales", "profitability"),
    "Attr43": ("receivables days + inventory days", "activity"),
    "Attr44": ("(receivables * 365) / sales", "activity"),
    "Attr45": ("net profit / inventory", "profitability"),
    "Attr46": ("(current assets - inventory) / short-term liabilities", "liquidity"),
    "Attr47": ("(inventory * 365) / cost of products sold", "activity"),
    "Attr48": ("(operating profit - depreciation) / total assets", "profitability"),
    "Attr49": ("(operating profit - depreciation) / sales", "profitability"),
    "Attr50": ("current assets / total liabilities", "liquidity"),
    "Attr51": ("short-term liabilities / total assets", "leverage"),
    "Attr52": ("(short-term liabilities * 365) / cost of products sold", "activity"),
    "Attr53": ("equity / fixed assets", "leverage"),
    "Attr54": ("constant capital / fixed assets", "leverage"),
    "Attr55": ("working capital", "size"),
    "Attr56": ("(sales - cost of products sold) / sales", "profitability"),
    "Attr57": (
        "(current assets - inventory - short-term liabilities) / (sales - gross profit - deprec.)",
        "liquidity",
    ),
    "Attr58": ("total costs / total sales", "profitability"),
    "Attr59": ("long-term liabilities / equity", "leverage"),
    "Attr60": ("sales / inventory", "activity"),
    "Attr61": ("sales / receivables", "activity"),
    "Attr62": ("(short-term liabilities * 365) / sales", "activity"),
    "Attr63": ("sales / short-term liabilities", "liquidity"),
    "Attr64": ("sales / fixed assets", "activity"),
}
POLISH_FEATURES = tuple(ATTRIBUTES)

# Familiar name -> Polish attribute holding the same figure.
STANDARD_RATIOS: dict[str, str] = {
    "current_ratio": "Attr4",
    "quick_ratio": "Attr46",
    "cash_ratio": "Attr40",
    "working_capital_to_assets": "Attr3",
    "debt_ratio": "Attr2",
    "equity_ratio": "Attr10",
    "equity_to_liabilities": "Attr8",
    "interest_cover": "Attr27",
    "long_term_debt_to_equity": "Attr59",
    "return_on_assets": "Attr1",
    "ebit_to_assets": "Attr7",
    "retained_earnings_to_assets": "Attr6",
    "net_margin": "Attr23",
    "operating_margin": "Attr42",
    "gross_margin": "Attr56",
    "asset_turnover": "Attr9",
    "inventory_days": "Attr20",
    "receivable_days": "Attr44",
    "current_liability_days": "Attr62",
    "sales_growth": "Attr21",
    "log10_total_assets": "Attr29",
    "working_capital_thousands": "Attr55",
}

DAYS = 365.0
THOUSAND = 1e3


def describe_feature(name: str) -> tuple[str, str]:
    """Return (meaning, category) for a feature name; unknown names describe themselves."""
    return ATTRIBUTES.get(name, (name, "other"))


def polish_attributes(statements: pd.DataFrame, *, by: str | None = None) -> pd.DataFrame:
    """Compute Attr1..Attr64 per row from validated statements (NaN where not computable).

    Rows are one SME's consecutive periods, oldest first; with `by`, rows of many SMEs are
    grouped by that column (each group in period order) so that growth never crosses SMEs.
    """
    items = _items(statements, by)
    frame = pd.DataFrame({name: _clean(formula(items)) for name, formula in FORMULAS.items()})
    if by is None and "period" in statements:
        frame.index = pd.Index(statements["period"].to_numpy())
    else:
        frame.index = statements.index
    return frame[list(POLISH_FEATURES)]


def standard_ratios(statements: pd.DataFrame) -> pd.DataFrame:
    """Return the standard liquidity, leverage, profitability, activity and size ratios."""
    attributes = polish_attributes(statements)
    return pd.DataFrame({name: attributes[attr] for name, attr in STANDARD_RATIOS.items()})


def _items(s: pd.DataFrame, by: str | None) -> Items:
    def col(name: str) -> pd.Series:
        if name in s:
            return s[name].astype(float).reset_index(drop=True)
        return pd.Series(np.nan, index=range(len(s)), dtype=float)

    v = {name: col(name) for name in AMOUNT_COLUMNS}
    v["working_capital"] = v["working_capital"].fillna(
        v["current_assets"] - v["current_liabilities"]
    )
    v["fixed_assets"] = v["fixed_assets"].fillna(v["total_assets"] - v["current_assets"])
    v["long_term_liabilities"] = v["long_term_liabilities"].fillna(
        v["total_liabilities"] - v["current_liabilities"]
    )
    # Profit lines an SME often reports under one name only: EBIT = profit before tax +
    # interest, and operating profit is EBIT when nothing non-operating is reported. Left
    # missing, a ratio the Polish data leaves empty mostly for failing firms would read as one.
    interest = v["interest_expense"]
    v["ebit"] = v["ebit"].fillna(v["profit_before_tax"] + interest)
    v["profit_before_tax"] = v["profit_before_tax"].fillna(v["ebit"] - interest)
    v["operating_profit"] = v["operating_profit"].fillna(v["ebit"])
    v["constant_capital"] = v["equity"] + v["long_term_liabilities"]
    quarterly = "period" in s and s["period"].astype(str).str.contains("Q").any()
    lag = 4 if quarterly else 1
    v["sales_previous_year"] = v["sales"].shift(lag)
    v["pbt_3_years"] = (
        v["profit_before_tax"].rolling(3).sum() if not quarterly else v["sales"] * np.nan
    )
    return v


def _div(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return numerator / denominator.where(denominator != 0)


def _clean(values: pd.Series) -> pd.Series:
    return values.astype(float).replace([np.inf, -np.inf], np.nan)


def _formulas() -> dict[str, Formula]:
    ta, tl, cl, ca = "total_assets", "total_liabilities", "current_liabilities", "current_assets"
    pbt, dep, opp, cogs = (
        "profit_before_tax",
        "depreciation",
        "operating_profit",
        "cost_of_products_sold",
    )

    def ratio(num: str, den: str, times: float = 1.0) -> Formula:
        return lambda v: _div(v[num] * times, v[den])

    return {
        "Attr1": ratio("net_profit", ta),
        "Attr2": ratio(tl, ta),
        "Attr3": ratio("working_capital", ta),
        "Attr4": ratio(ca, cl),
        "Attr5": lambda v: (
            _div(
                v["cash"] + v["short_term_securities"].fillna(0) + v["receivables"] - v[cl],
                v["operating_expenses"] - v[dep],
            )
            * DAYS
        ),
        "Attr6": ratio("retained_earnings", ta),
        "Attr7": ratio("ebit", ta),
        "Attr8": ratio("equity", tl),
        "Attr9": ratio("sales", ta),
        "Attr10": ratio("equity", ta),
        "Attr11": lambda v: _div(
            v[pbt] + v["extraordinary_items"].fillna(0) + v["interest_expense"].fillna(0), v[ta]
        ),
        "Attr12": ratio(pbt, cl),
        "Attr13": lambda v: _div(v[pbt] + v[dep], v["sales"]),
        "Attr14": lambda v: _div(v[pbt] + v["interest_expense"].fillna(0), v[ta]),
        "Attr15": lambda v: _div(v[tl] * DAYS, v[pbt] + v[dep]),
        "Attr16": lambda v: _div(v[pbt] + v[dep], v[tl]),
        "Attr17": ratio(ta, tl),
        "Attr18": ratio(pbt, ta),
        "Attr19": ratio(pbt, "sales"),
        "Attr20": ratio("inventory", "sales", DAYS),
        "Attr21": ratio("sales", "sales_previous_year"),
        "Attr22": ratio(opp, ta),
        "Attr23": ratio("net_profit", "sales"),
        "Attr24": ratio("pbt_3_years", ta),
        "Attr25": lambda v: _div(v["equity"] - v["share_capital"], v[ta]),
        "Attr26": lambda v: _div(v["net_profit"] + v[dep], v[tl]),
        "Attr27": ratio(opp, "interest_expense"),
        "Attr28": ratio("working_capital", "fixed_assets"),
        "Attr29": lambda v: np.log10(v[ta].where(v[ta] > 0) / THOUSAND),
        "Attr30": lambda v: _div(v[tl] - v["cash"], v["sales"]),
        "Attr31": lambda v: _div(v[pbt] + v["interest_expense"].fillna(0), v["sales"]),
        "Attr32": ratio(cl, cogs, DAYS),
        "Attr33": ratio("operating_expenses", cl),
        "Attr34": ratio("operating_expenses", tl),
        "Attr35": ratio("profit_on_sales", ta),
        "Attr36": ratio("sales", ta),
        "Attr37": lambda v: _div(v[ca] - v["inventory"], v["long_term_liabilities"]),
        "Attr38": ratio("constant_capital", ta),
        "Attr39": ratio("profit_on_sales", "sales"),
        "Attr40": lambda v: _div(v[ca] - v["inventory"] - v["receivables"], v[cl]),
        "Attr41": lambda v: _div(v[tl], (v[opp] + v[dep]) * (DAYS / 12)),
        "Attr42": ratio(opp, "sales"),
        "Attr43": lambda v: _div((v["receivables"] + v["inventory"]) * DAYS, v["sales"]),
        "Attr44": ratio("receivables", "sales", DAYS),
        "Attr45": ratio("net_profit", "inventory"),
        "Attr46": lambda v: _div(v[ca] - v["inventory"], v[cl]),
        "Attr47": ratio("inventory", cogs, DAYS),
        "Attr48": lambda v: _div(v[opp] - v[dep], v[ta]),
        "Attr49": lambda v: _div(v[opp] - v[dep], v["sales"]),
        "Attr50": ratio(ca, tl),
        "Attr51": ratio(cl, ta),
        "Attr52": ratio(cl, cogs),
        "Attr53": ratio("equity", "fixed_assets"),
        "Attr54": ratio("constant_capital", "fixed_assets"),
        "Attr55": lambda v: v["working_capital"] / THOUSAND,
        "Attr56": lambda v: _div(v["sales"] - v[cogs], v["sales"]),
        "Attr57": lambda v: _div(v[ca] - v["inventory"] - v[cl], v["sales"] - v[pbt] - v[dep]),
        "Attr58": ratio("total_costs", "sales"),
        "Attr59": ratio("long_term_liabilities", "equity"),
        "Attr60": ratio("sales", "inventory"),
        "Attr61": ratio("sales", "receivables"),
        "Attr62": ratio(cl, "sales", DAYS),
        "Attr63": ratio("sales", cl),
        "Attr64": ratio("sales", "fixed_assets"),
    }


FORMULAS = _formulas()
