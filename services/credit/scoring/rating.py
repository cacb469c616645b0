"""Rating scale: probability of default to points-to-double-the-odds score and AAA..C grade.

Score = offset + factor * ln(good:bad odds), factor = PDO / ln 2, so that `base_score` sits at
`base_odds` and every `pdo` points double the odds. Grades are fixed one-year PD bands (upper
bounds, inclusive):

    AAA <= 0.10%   AA <= 0.25%   A <= 0.50%   BBB <= 1%   BB <= 2.5%
    B   <= 5%      CCC <= 12%    CC <= 25%    C  above 25%
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

GRADE_BANDS: tuple[tuple[str, float], ...] = (
    ("AAA", 0.001),
    ("AA", 0.0025),
    ("A", 0.005),
    ("BBB", 0.01),
    ("BB", 0.025),
    ("B", 0.05),
    ("CCC", 0.12),
    ("CC", 0.25),
    ("C", 1.0),
)
GRADES = tuple(name for name, _ in GRADE_BANDS)
PD_FLOOR = 1e-6


@dataclass(frozen=True)
class ScoreScale:
    """A points-to-double-the-odds scale (default: 600 points at 50:1, 20 points per doubling)."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    @property
    def factor(self) -> float:
        """Points per unit of log-odds."""
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        """Score at even odds (1:1)."""
        return self.base_score - self.factor * math.log(self.base_odds)

    def scores(self, pd_values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return scores for probabilities of default (clipped away from 0 and 1)."""
        p = np.clip(pd_values, PD_FLOOR, 1 - PD_FLOOR)
        return np.asarray(self.offset + self.factor * np.log((1 - p) / p), dtype=np.float64)


def reason_text(description: str, category: str, value: float | None, points: float | None) -> str:
    """A reason code as a bank officer reads it: which ratio, its value, what it cost.

    `points` is the reason's effect on the score (negative: it lowered the score); `value` is
    the SME's ratio, omitted when the reader may not see values.
    """
    text = f"{category.replace('_', ' ').capitalize()}: {description}"
    if value is not None:
        text += f" is {_plain_number(value)}"
    if points is not None and points < 0:
        text += f", which lowers the score by {abs(points):.1f} points"
    elif points is not None:
        text += f", which raises the score by {points:.1f} points"
    return text


def _plain_number(value: float) -> str:
    """Three significant digits (0.00577, 9.49, 237), thousands separated above 1,000."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def grades(pd_values: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
    """Return the grade of each probability of default."""
    bounds = np.array([bound for _, bound in GRADE_BANDS[:-1]])
    index = np.searchsorted(bounds, pd_values, side="left")
    return np.asarray(np.array(GRADES)[index])


@dataclass(frozen=True)
class ReasonCode:
    """One factor that raised this SME's risk, with its contribution in score points."""

    feature: str
    description: str
    category: str
    value: float | None
    points: float


@dataclass(frozen=True)
class Rating:
    """A credit rating of one SME by one model version."""

    probability_of_default: float
    score: float
    grade: str
    reasons: tuple[ReasonCode, ...]
    model_sha256: str
    scale: ScoreScale = field(default_factory=ScoreScale)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict."""
        return asdict(self)
