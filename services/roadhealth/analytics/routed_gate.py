"""The live gate as two ridge ensembles on the same kernels, routed by a piece's length.

Whole 2 s pieces are judged by the gate trained on whole pieces (`train_gate_ensemble` without
short cuts); shorter ones (a 1 s telemetry window, a segment's last stretch) by the gate
trained with every piece also cut shorter (`short_cuts`), which judges a short piece on its
content. One model trained with the short cuts judged the real windows better (5-fold CV:
potholes 62.9% at precision 0.83) but lost the fleet's 4 s windows a pothole on six of fifteen
seeds (148 of 160 on seeds 0-9 against 153), so whole pieces keep their own model (issue 15,
eighth session).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.roadhealth.analytics.anomaly import ClassifierError
from services.roadhealth.analytics.ensemble import (
    GATE_SHORT_MIN_S,
    EnsembleClassifier,
    WindowFeatures,
    softmax,
    train_gate_ensemble,
)
from services.roadhealth.analytics.shocks import PIECE_S

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RoutedGate:
    """Whole pieces to `whole`, shorter ones (down to `short.min_piece_s`) to `short`."""

    whole: EnsembleClassifier
    short: EnsembleClassifier

    def __post_init__(self) -> None:
        # Verify both judge the same features into the same classes
        if self.whole.classes != self.short.classes or self.whole.rate_hz != self.short.rate_hz:
            raise ClassifierError("a routed gate's two models differ in classes or rate")
        if not _same_kernels(self.whole, self.short):
            raise ClassifierError("a routed gate's two models were trained on other kernels")
        if self.short.min_piece_s is None:
            raise ClassifierError("a routed gate's short model records no shortest piece")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.whole.classes

    @property
    def model_id(self) -> str:
        """Both models' ids: which pair judged a window."""
        return f"{self.whole.model_id}+{self.short.model_id}"

    @property
    def rate_hz(self) -> float:
        return self.whole.rate_hz

    @property
    def min_piece_s(self) -> float | None:
        return self.short.min_piece_s

    def predict_proba(
        self, windows: Sequence[FloatArray], *, rate_hz: float | None = None
    ) -> FloatArray:
        """Class probabilities per piece, each by the model for its length."""
        whole_size = round(PIECE_S * (rate_hz or self.rate_hz))
        features = self.whole.features(windows, rate_hz=rate_hz)
        odds = self.whole.log_odds(features)
        short = [i for i, w in enumerate(windows) if len(w) < whole_size]
        if short:
            part = WindowFeatures(features.hand[short], features.kernel[short])
            odds[short] = self.short.log_odds(part)
        return softmax(odds)


def _same_kernels(a: EnsembleClassifier, b: EnsembleClassifier) -> bool:
    return all(
        np.array_equal(getattr(a.kernels, part), getattr(b.kernels, part))
        for part in ("lengths", "weights", "bias", "dilation", "padded")
    )


def train_routed_gate(
    windows: Sequence[FloatArray],
    labels: Sequence[str],
    *,
    rate_hz: float = 50.0,
    short_min_s: float = GATE_SHORT_MIN_S,
) -> RoutedGate:
    """Both models of the live gate on the same labelled windows (train_gate_ensemble)."""
    whole = train_gate_ensemble(windows, labels, rate_hz=rate_hz, short_min_s=None)
    short = train_gate_ensemble(windows, labels, rate_hz=rate_hz, short_min_s=short_min_s)
    return RoutedGate(whole, short)
