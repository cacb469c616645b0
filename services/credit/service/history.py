"""An SME's statement history across uploads: merging, continuity, and its ratio features."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from chain.encoding import hash_json
from services.credit.errors import Problem, StatementError
from services.credit.scoring.features import polish_attributes
from services.credit.statements import AMOUNT_COLUMNS

_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4]))?$")


def period_sort_key(period: str) -> int:
    """A number that orders periods: year * 4 + quarter - 1 (annual periods sort as Q4)."""
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"bad period {period!r}")
    quarter = int(match[2]) if match[2] else 4
    return int(match[1]) * 4 + quarter - 1


def is_quarterly(period: str) -> bool:
    return "-Q" in period


def amounts_of(row: Mapping[str, Any]) -> dict[str, float | None]:
    """The amount columns of a validated statement row (None where not given)."""
    out: dict[str, float | None] = {}
    for name in AMOUNT_COLUMNS:
        value = row.get(name)
        out[name] = None if value is None or _missing(value) else float(value)
    return out


def check_continuity(stored: list[str], uploaded: pd.DataFrame) -> None:
    """Refuse an upload that mixes frequencies with, or leaves a gap after, stored periods."""
    new = {str(p): int(r) for p, r in zip(uploaded["period"], uploaded["row"], strict=True)}
    if stored and any(is_quarterly(p) != is_quarterly(next(iter(new))) for p in stored):
        raise StatementError(
            [
                Problem(
                    None,
                    "period",
                    "the SME's stored statements use the other frequency"
                    " (annual vs quarterly); upload the same frequency",
                )
            ]
        )
    merged = sorted({*stored, *new}, key=period_sort_key)
    step = 1 if is_quarterly(merged[0]) else 4
    problems = []
    for before, after in itertools.pairwise(merged):
        if period_sort_key(after) - period_sort_key(before) != step:
            row = new.get(after, new.get(before))
            problems.append(
                Problem(
                    row,
                    "period",
                    f"gap between {before} and {after} with the periods"
                    " already stored: upload the missing periods too",
                )
            )
    if problems:
        raise StatementError(problems)


def features_by_period(
    periods: list[str], amounts: list[dict[str, float | None]]
) -> dict[str, dict[str, float | None]]:
    """Attr1..Attr64 of every period of one SME's continuous history (None where missing)."""
    order = sorted(range(len(periods)), key=lambda i: period_sort_key(periods[i]))
    frame = pd.DataFrame([amounts[i] for i in order], columns=list(AMOUNT_COLUMNS), dtype=float)
    frame.insert(0, "period", [periods[i] for i in order])
    attributes = polish_attributes(frame)
    out: dict[str, dict[str, float | None]] = {}
    for period, values in zip(attributes.index, attributes.to_numpy(), strict=True):
        out[str(period)] = {
            name: None if np.isnan(v) else float(v)
            for name, v in zip(attributes.columns, values, strict=True)
        }
    return out


def features_hash(uscc: str, period: str, features: Mapping[str, float | None]) -> str:
    """SHA-256 of the canonical features, bound to the SME and period (what the chain holds)."""
    return hash_json({"uscc": uscc, "period": period, "features": dict(features)})


def _missing(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
