"""Financial-statement ingestion from CSV or Excel: every problem reported by row and column.

A file has one row per reporting period and these columns (amounts in `currency` x `unit`):

    identity      period (YYYY annual, or YYYY-Qn quarterly; one frequency per file),
                  currency (ISO 4217; CNY by default), unit (units | thousands | millions)
    required      total_assets, current_assets, current_liabilities, total_liabilities,
                  equity, sales, net_profit
    optional      fixed_assets, inventory, receivables, cash, short_term_securities,
                  working_capital, retained_earnings, share_capital, long_term_liabilities,
                  profit_before_tax, ebit, operating_profit, profit_on_sales, extraordinary_items,
                  interest_expense, operating_expenses, cost_of_products_sold, total_costs,
                  depreciation

`profit_before_tax` is what the Polish bankruptcy ratios call "gross profit" (zysk brutto).
`short_term_liabilities` is accepted as another name for `current_liabilities`. A rejected
file raises `StatementError` with every problem; an accepted one comes back as a DataFrame in
currency units (unit scale applied), sorted by period, with a `row` column naming its source row.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd

from services.credit.errors import Problem, StatementError

REQUIRED_AMOUNTS = (
    "total_assets",
    "current_assets",
    "current_liabilities",
    "total_liabilities",
    "equity",
    "sales",
    "net_profit",
)
OPTIONAL_AMOUNTS = (
    "fixed_assets",
    "inventory",
    "receivables",
    "cash",
    "short_term_securities",
    "working_capital",
    "retained_earnings",
    "share_capital",
    "long_term_liabilities",
    "profit_before_tax",
    "ebit",
    "operating_profit",
    "profit_on_sales",
    "extraordinary_items",
    "interest_expense",
    "operating_expenses",
    "cost_of_products_sold",
    "total_costs",
    "depreciation",
)
AMOUNT_COLUMNS = REQUIRED_AMOUNTS + OPTIONAL_AMOUNTS
IDENTITY_COLUMNS = ("period", "currency", "unit")
ALIASES = {"short_term_liabilities": "current_liabilities"}
# Amounts that cannot be negative on a sound balance sheet or income statement.
NON_NEGATIVE = frozenset(
    {
        "total_assets",
        "current_assets",
        "current_liabilities",
        "total_liabilities",
        "sales",
        "fixed_assets",
        "inventory",
        "receivables",
        "cash",
        "short_term_securities",
        "share_capital",
        "long_term_liabilities",
        "interest_expense",
        "operating_expenses",
        "cost_of_products_sold",
        "total_costs",
        "depreciation",
    }
)
UNIT_SCALE = {"units": 1.0, "thousands": 1e3, "millions": 1e6}
DEFAULT_CURRENCIES = frozenset({"CNY"})
BALANCE_TOLERANCE = 0.01
FIRST_DATA_ROW = 2  # spreadsheet row of the first data line (the header is row 1)

_ANNUAL = re.compile(r"^(\d{4})$")
_QUARTERLY = re.compile(r"^(\d{4})-?Q([1-4])$")

Source = str | Path | bytes | BinaryIO
FileFormat = Literal["csv", "xlsx"]
PeriodKey = tuple[str, int]  # ("A", year) or ("Q", year * 4 + quarter - 1)


def load_statements(
    source: Source,
    *,
    file_format: FileFormat | None = None,
    currencies: Iterable[str] = DEFAULT_CURRENCIES,
) -> pd.DataFrame:
    """Read a CSV or Excel statement file and return it validated, or raise `StatementError`."""
    return validate_statements(read_table(source, file_format=file_format), currencies=currencies)


def read_table(source: Source, *, file_format: FileFormat | None = None) -> pd.DataFrame:
    """Read a CSV or Excel file as strings, so that validation sees exactly what was written."""
    fmt = file_format or _guess_format(source)
    data: Path | io.BytesIO | BinaryIO = (
        io.BytesIO(source)
        if isinstance(source, bytes)
        else Path(source)
        if isinstance(source, str)
        else source
    )
    try:
        if fmt == "xlsx":
            return pd.read_excel(data, dtype=str, engine="openpyxl")
        return pd.read_csv(data, dtype=str, skipinitialspace=True)
    except Exception as exc:  # pandas, openpyxl and zipfile raise many types on a bad file
        raise StatementError([Problem(None, None, f"cannot read {fmt} file: {exc}")]) from exc


def validate_statements(
    raw: pd.DataFrame, *, currencies: Iterable[str] = DEFAULT_CURRENCIES
) -> pd.DataFrame:
    """Validate a table of strings; return amounts scaled to currency units, sorted by period."""
    raw = _apply_aliases(raw).reset_index(drop=True)
    problems = _check_columns(raw)
    if problems:
        raise StatementError(problems)
    if raw.empty:
        raise StatementError([Problem(None, None, "the file has a header but no data rows")])
    rows = pd.Series(np.arange(len(raw)) + FIRST_DATA_ROW, index=raw.index)
    amounts, amount_problems = _parse_amounts(raw, rows)
    scale, unit_problems = _parse_units(raw, rows, frozenset(currencies))
    keys, period_problems = _parse_periods(raw, rows)
    problems = amount_problems + unit_problems + period_problems
    problems += _check_consistency(amounts, rows)
    scaled = amounts * scale.to_numpy()[:, None]
    problems += _check_scaled(amounts, scaled, raw, rows)
    if problems:
        raise StatementError(sorted(problems, key=lambda p: (p.row or 0, p.column or "")))
    return _assemble(raw, scaled, keys, rows)


def _check_scaled(
    amounts: pd.DataFrame, scaled: pd.DataFrame, raw: pd.DataFrame, rows: pd.Series
) -> list[Problem]:
    """A finite amount that its unit carries past any float (1e305 millions)."""
    problems = []
    for column in amounts.columns:
        before = amounts[column].to_numpy(dtype=float)
        after = scaled[column].to_numpy(dtype=float)
        for position in np.flatnonzero(np.isfinite(before) & ~np.isfinite(after)):
            index = amounts.index[int(position)]
            unit = str(raw.at[index, "unit"]).strip()
            message = f"{before[position]:g} {unit} is too large"
            problems.append(Problem(int(rows[index]), str(column), message))
    return problems


def _guess_format(source: Source) -> FileFormat:
    if isinstance(source, bytes):
        return "xlsx" if source[:2] == b"PK" else "csv"
    if isinstance(source, str | Path):
        return "xlsx" if str(source).lower().endswith((".xlsx", ".xlsm")) else "csv"
    return "csv"


def _apply_aliases(raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.rename(columns=lambda c: str(c).strip().lower())
    for alias, name in ALIASES.items():
        if alias in raw.columns and name not in raw.columns:
            raw = raw.rename(columns={alias: name})
    return raw


def _check_columns(raw: pd.DataFrame) -> list[Problem]:
    problems: list[Problem] = []
    columns = [str(c) for c in raw.columns]
    for name in sorted({c for c in columns if columns.count(c) > 1}):
        problems.append(Problem(1, name, "column appears more than once"))
    for name in (*IDENTITY_COLUMNS, *REQUIRED_AMOUNTS):
        if name not in columns:
            problems.append(Problem(1, name, "required column is missing"))
    known = {*IDENTITY_COLUMNS, *AMOUNT_COLUMNS, *ALIASES}
    for name in columns:
        if name not in known:
            problems.append(Problem(1, name, "unknown column (see the declared column list)"))
    return problems


def _parse_amounts(raw: pd.DataFrame, rows: pd.Series) -> tuple[pd.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    present = [c for c in AMOUNT_COLUMNS if c in raw.columns]
    amounts = pd.DataFrame(index=raw.index, columns=list(AMOUNT_COLUMNS), dtype=float)
    for column in present:
        text = raw[column].str.strip().str.replace(",", "", regex=False)
        values = pd.to_numeric(text, errors="coerce")
        blank = text.isna() | (text == "")
        for index in raw.index[values.isna() & ~blank]:
            problems.append(
                Problem(int(rows[index]), column, f"{raw.at[index, column]!r} is not a number")
            )
        # inf, 1e400 or 400 nines parse, as a float no amount is (stored, it read back empty)
        for index in raw.index[values.notna() & ~np.isfinite(values.astype(float))]:
            problems.append(
                Problem(
                    int(rows[index]), column, f"{raw.at[index, column]!r} is not a finite amount"
                )
            )
        if column in REQUIRED_AMOUNTS:
            for index in raw.index[blank]:
                problems.append(Problem(int(rows[index]), column, "required value is empty"))
        if column in NON_NEGATIVE:
            for index in raw.index[values < 0]:
                problems.append(
                    Problem(int(rows[index]), column, f"{values[index]:g} must not be negative")
                )
        amounts[column] = values.astype(float)
    return amounts, problems


def _parse_units(
    raw: pd.DataFrame, rows: pd.Series, currencies: frozenset[str]
) -> tuple[pd.Series, list[Problem]]:
    problems: list[Problem] = []
    currency = raw["currency"].fillna("").str.strip().str.upper()
    unit = raw["unit"].fillna("").str.strip().str.lower()
    for index in raw.index:
        if currency[index] not in currencies:
            allowed = ", ".join(sorted(currencies))
            problems.append(
                Problem(
                    int(rows[index]), "currency", f"{currency[index]!r} is not accepted ({allowed})"
                )
            )
        if unit[index] not in UNIT_SCALE:
            allowed = ", ".join(UNIT_SCALE)
            problems.append(
                Problem(int(rows[index]), "unit", f"{unit[index]!r} is not a unit ({allowed})")
            )
    if currency.nunique() > 1:
        problems.append(Problem(None, "currency", "all rows must use one currency"))
    return unit.map(UNIT_SCALE).fillna(1.0), problems


def _parse_periods(
    raw: pd.DataFrame, rows: pd.Series
) -> tuple[list[PeriodKey | None], list[Problem]]:
    problems: list[Problem] = []
    keys: list[PeriodKey | None] = []
    for row, text in zip(rows, raw["period"].fillna("").str.strip().str.upper(), strict=True):
        key = _period_key(text)
        if key is None:
            problems.append(Problem(int(row), "period", f"{text!r} is not YYYY or YYYY-Qn"))
        keys.append(key)
    parsed = [(int(row), key) for row, key in zip(rows, keys, strict=True) if key is not None]
    if len({key[0] for _, key in parsed}) > 1:
        problems.append(Problem(None, "period", "mixes annual and quarterly periods"))
        return keys, problems
    problems += _duplicate_periods(parsed) + _period_gaps(parsed)
    return keys, problems


def _period_key(text: str) -> PeriodKey | None:
    if match := _ANNUAL.match(text):
        return ("A", int(match[1]))
    if match := _QUARTERLY.match(text):
        return ("Q", int(match[1]) * 4 + int(match[2]) - 1)
    return None


def _duplicate_periods(parsed: list[tuple[int, PeriodKey]]) -> list[Problem]:
    seen: dict[PeriodKey, int] = {}
    problems = []
    for row, key in parsed:
        if key in seen:
            problems.append(Problem(row, "period", f"duplicate of row {seen[key]}"))
        else:
            seen[key] = row
    return problems


def _period_gaps(parsed: list[tuple[int, PeriodKey]]) -> list[Problem]:
    first_row: dict[PeriodKey, int] = {}
    for row, key in parsed:
        first_row.setdefault(key, row)
    ordered = sorted(first_row, key=lambda k: k[1])
    problems = []
    for before, after in itertools.pairwise(ordered):
        missing = [_period_label((after[0], n)) for n in range(before[1] + 1, after[1])]
        if missing:
            problems.append(
                Problem(first_row[after], "period", f"gap: missing {', '.join(missing)}")
            )
    return problems


def _period_label(key: PeriodKey) -> str:
    return str(key[1]) if key[0] == "A" else f"{key[1] // 4}-Q{key[1] % 4 + 1}"


def _check_consistency(amounts: pd.DataFrame, rows: pd.Series) -> list[Problem]:
    problems = []
    a = amounts
    for index in a.index[a["current_assets"] > a["total_assets"]]:
        problems.append(Problem(int(rows[index]), "current_assets", "exceeds total_assets"))
    for index in a.index[a["current_liabilities"] > a["total_liabilities"]]:
        problems.append(
            Problem(int(rows[index]), "current_liabilities", "exceeds total_liabilities")
        )
    gap = (a["total_assets"] - a["total_liabilities"] - a["equity"]).abs()
    for index in a.index[gap > BALANCE_TOLERANCE * a["total_assets"].abs().clip(lower=1.0)]:
        problems.append(
            Problem(
                int(rows[index]), "equity", "total_assets != total_liabilities + equity (beyond 1%)"
            )
        )
    return problems


def _assemble(
    raw: pd.DataFrame, amounts: pd.DataFrame, keys: list[PeriodKey | None], rows: pd.Series
) -> pd.DataFrame:
    out = amounts.copy()
    periods = [k for k in keys if k is not None]
    out.insert(0, "period", [_period_label(k) for k in periods])
    out.insert(1, "currency", raw["currency"].str.strip().str.upper())
    out.insert(2, "row", rows.astype(int))
    if out["working_capital"].isna().all():
        out["working_capital"] = out["current_assets"] - out["current_liabilities"]
    order = np.argsort([k[1] for k in periods], kind="stable")
    return out.iloc[order].reset_index(drop=True)
