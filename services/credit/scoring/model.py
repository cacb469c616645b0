"""A trained credit model: PD from calibrated gradient boosting, reasons from the scorecard.

The probability of default comes from the calibrated `HistGradientBoostingClassifier` (the
accurate model). Reason codes come from the calibrated WOE logistic scorecard trained on the
same rows: for each SME, the features whose weight-of-evidence contribution pushed the log-odds
of default up the most, in score points. Both models see exactly the same features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from services.credit.errors import FeatureMismatchError
from services.credit.scoring import features as feature_table
from services.credit.scoring.compiled import CompiledGbm, compile_gbm
from services.credit.scoring.metrics import validation_report
from services.credit.scoring.rating import Rating, ReasonCode, ScoreScale, grades
from services.credit.scoring.scorecard import contributions

FloatArray = npt.NDArray[np.float64]
TOP_REASONS = 4
# Up to this many rows, the flattened numpy predictor beats scikit-learn's per-call overhead.
COMPILED_MAX_ROWS = 64
# Boosted-tree prediction runs on one OpenMP thread: on a busy machine the default thread team
# turned a 20 ms single rating into seconds at p99, and one thread still rates 10,000 SMEs
# in about a second.
_THREADS = ThreadpoolController()


@dataclass(frozen=True)
class CreditModel:
    """A loaded, hash-verified model version ready to rate SMEs."""

    gbm: Any
    scorecard: Any
    metadata: dict[str, Any]
    sha256: str
    scale: ScoreScale = field(default_factory=ScoreScale)

    @property
    def feature_names(self) -> list[str]:
        """The model's feature columns, in order."""
        return list(self.metadata["feature_names"])

    def matrix(self, frame: pd.DataFrame) -> FloatArray:
        """Return the frame's features in model order, or raise `FeatureMismatchError`."""
        expected = self.feature_names
        missing = [c for c in expected if c not in frame.columns]
        extra = [str(c) for c in frame.columns if c not in set(expected)]
        if missing or extra:
            raise FeatureMismatchError(_mismatch_message(missing, extra, len(expected)))
        try:
            values = frame[expected].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            values = (
                frame[expected].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            )
        return np.where(np.isinf(values), np.nan, values)

    def predict_pd(self, frame: pd.DataFrame) -> FloatArray:
        """Return the calibrated probability of default of each row."""
        return self._gbm_pd(self.matrix(frame))

    def predict_scorecard_pd(self, frame: pd.DataFrame) -> FloatArray:
        """Return the calibrated scorecard's probability of default (the explainable model)."""
        return np.asarray(self.scorecard.predict_proba(self.matrix(frame))[:, 1], dtype=np.float64)

    def rate_many(self, frame: pd.DataFrame, *, top_reasons: int = TOP_REASONS) -> list[Rating]:
        """Rate every row of a feature frame."""
        values = self.matrix(frame)
        pd_values = self._gbm_pd(values)
        scores = self.scale.scores(pd_values)
        graded = grades(pd_values)
        reasons = self._reasons(values, top_reasons)
        return [
            Rating(float(p), round(float(s), 1), str(g), r, self.sha256, self.scale)
            for p, s, g, r in zip(pd_values, scores, graded, reasons, strict=True)
        ]

    def rate(
        self, features: Mapping[str, float | None], *, top_reasons: int = TOP_REASONS
    ) -> Rating:
        """Rate one SME from a mapping of feature name to value (None for missing)."""
        values = self._row(features)
        if values is None:  # not plainly numeric, or not the model's features: the checked path
            row = {k: (np.nan if v is None else v) for k, v in features.items()}
            return self.rate_many(pd.DataFrame([row]), top_reasons=top_reasons)[0]
        pd_value = float(self._gbm_pd(values)[0])
        reasons = self._reasons(values, top_reasons)[0]
        score = float(self.scale.scores(np.array([pd_value]))[0])
        grade = str(grades(np.array([pd_value]))[0])
        return Rating(pd_value, round(score, 1), grade, reasons, self.sha256, self.scale)

    def rate_statements(self, statements: pd.DataFrame) -> Rating:
        """Rate an SME on its latest period of validated statements (Polish-ratio models only)."""
        attributes = feature_table.polish_attributes(statements)
        return self.rate_many(attributes.iloc[[-1]].reset_index(drop=True))[0]

    def evaluate(self, frame: pd.DataFrame, labels: npt.NDArray[np.int_]) -> dict[str, Any]:
        """Return the validation report of this model on labelled rows."""
        return validation_report(labels, self.predict_pd(frame))

    @cached_property
    def compiled(self) -> CompiledGbm | None:
        """The flattened predictor of the boosted model (None if its layout is not supported)."""
        return compile_gbm(self.gbm)

    @cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(self.feature_names)

    def _row(self, features: Mapping[str, float | None]) -> FloatArray | None:
        """One row in model order, or None when the mapping needs the checked frame path."""
        names = self._names
        if len(features) != len(names):
            return None
        try:
            values = [features[n] for n in names]
            row = np.array([[np.nan if v is None else float(v) for v in values]])
        except (KeyError, TypeError, ValueError):
            return None
        return np.where(np.isinf(row), np.nan, row)

    def _gbm_pd(self, values: FloatArray) -> FloatArray:
        compiled = self.compiled
        if compiled is not None and len(values) <= COMPILED_MAX_ROWS:
            return compiled.predict_pd(values)
        with _THREADS.limit(limits=1, user_api="openmp"):
            return np.asarray(self.gbm.predict_proba(values)[:, 1], dtype=np.float64)

    def _reasons(self, values: FloatArray, top: int) -> list[tuple[ReasonCode, ...]]:
        pipeline = self.scorecard.calibrated_classifiers_[0].estimator
        points = contributions(pipeline, values) * self.scale.factor
        order = np.argsort(-points, axis=1, kind="stable")[:, :top]
        # Gather the top columns once and convert to Python lists: per-element numpy scalar
        # access was most of the time of rating 10,000 SMEs
        top_points = np.take_along_axis(points, order, axis=1)
        top_values = np.take_along_axis(values, order, axis=1)
        present = top_values.astype(object)
        present[np.isnan(top_values)] = None
        described = self._described
        out = []
        for columns, raw, pts, vals in zip(
            order.tolist(),
            top_points.tolist(),
            np.round(-top_points, 2).tolist(),
            present.tolist(),
            strict=True,
        ):
            codes = []
            for j, contribution, point, value in zip(columns, raw, pts, vals, strict=True):
                if contribution > 0:
                    name, description, category = described[j]
                    codes.append(ReasonCode(name, description, category, value, point))
            out.append(tuple(codes))
        return out

    @cached_property
    def _described(self) -> list[tuple[str, str, str]]:
        """(feature, description, category) of each feature, in model order."""
        return [(n, *feature_table.describe_feature(n)) for n in self.feature_names]


def _mismatch_message(missing: list[str], extra: list[str], n_expected: int) -> str:
    parts = [f"features do not match the model ({n_expected} features)"]
    if missing:
        parts.append(f"missing: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    if extra:
        parts.append(
            f"not in the model: {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}"
        )
    return "; ".join(parts)
