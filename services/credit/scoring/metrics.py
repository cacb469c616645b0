"""Validation metrics of a PD model: AUC, Gini, KS, Brier, calibration, bad rate by grade."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from services.credit.scoring.rating import GRADES, grades

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]


def discrimination(y: IntArray, pd_values: FloatArray) -> dict[str, float | int]:
    """Return AUC, Gini (2 AUC - 1), Kolmogorov-Smirnov, Brier score and n."""
    auc = float(roc_auc_score(y, pd_values))
    fpr, tpr, _ = roc_curve(y, pd_values)
    return {
        "auc": round(auc, 6),
        "gini": round(2 * auc - 1, 6),
        "ks": round(float(np.max(tpr - fpr)), 6),
        "brier": round(float(brier_score_loss(y, pd_values)), 6),
        "n": len(y),
    }


def calibration_by_decile(y: IntArray, pd_values: FloatArray) -> list[dict[str, float | int]]:
    """Return mean predicted PD against observed default rate in ten PD-ordered groups."""
    order = np.argsort(pd_values, kind="stable")
    table = []
    for decile, chunk in enumerate(np.array_split(order, 10), start=1):
        if len(chunk) == 0:
            continue
        table.append(
            {
                "decile": decile,
                "n": len(chunk),
                "mean_pd": round(float(pd_values[chunk].mean()), 6),
                "bad_rate": round(float(y[chunk].mean()), 6),
            }
        )
    return table


def bad_rate_by_grade(y: IntArray, pd_values: FloatArray) -> list[dict[str, Any]]:
    """Return count, mean PD and observed default rate per grade (grades with no SME omitted)."""
    graded = grades(pd_values)
    table = []
    for grade in GRADES:
        mask = graded == grade
        if mask.any():
            table.append(
                {
                    "grade": grade,
                    "n": int(mask.sum()),
                    "mean_pd": round(float(pd_values[mask].mean()), 6),
                    "bad_rate": round(float(y[mask].mean()), 6),
                }
            )
    return table


def validation_report(y: IntArray, pd_values: FloatArray) -> dict[str, Any]:
    """Return discrimination metrics with the calibration and grade tables."""
    return {
        **discrimination(y, pd_values),
        "calibration_by_decile": calibration_by_decile(y, pd_values),
        "bad_rate_by_grade": bad_rate_by_grade(y, pd_values),
    }
