"""Learned per-window surface classifier: honest cross-validation and a JSON model file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from services.roadhealth.analytics.features import FEATURE_NAMES, compute_window_features

FloatArray = NDArray[np.float64]
MODEL_FORMAT = "smartcity.roadhealth.anomaly-classifier"
POTHOLE_CLASS = "potholes"
# Window length is left out: it reflects how a dataset was cut, not the road surface.
CLASSIFIER_FEATURES = tuple(n for n in FEATURE_NAMES if n != "duration_s")
_FEATURE_INDEX = [FEATURE_NAMES.index(n) for n in CLASSIFIER_FEATURES]
REGULARISATION_C = 0.3


class ClassifierError(ValueError):
    """Training data or a model file the classifier cannot use."""


@dataclass(frozen=True)
class ClassifierMetrics:
    """Scores of predictions against labels."""

    accuracy: float
    macro_f1: float
    pothole_f1: float | None
    n: int


@dataclass(frozen=True)
class WindowClassifier:
    """Standardised window features into a multinomial logistic regression; plain arrays only."""

    classes: tuple[str, ...]
    rate_hz: float
    feature_names: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    coef: FloatArray
    intercept: FloatArray

    def predict_proba(self, windows: Sequence[FloatArray]) -> FloatArray:
        """Class probabilities per window, columns in the order of classes."""
        x = (compute_feature_matrix(windows, rate_hz=self.rate_hz) - self.mean) / self.scale
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        return np.asarray(prob / prob.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, windows: Sequence[FloatArray]) -> list[str]:
        """Most likely class of each window."""
        return [self.classes[i] for i in np.argmax(self.predict_proba(windows), axis=1)]


def compute_feature_matrix(windows: Sequence[FloatArray], *, rate_hz: float) -> FloatArray:
    """Classifier features of every window, one row each."""
    rows = [compute_window_features(w, rate_hz=rate_hz)[_FEATURE_INDEX] for w in windows]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(_FEATURE_INDEX))


def _fit(x: FloatArray, labels: Sequence[str], rate_hz: float) -> WindowClassifier:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ClassifierError(f"need windows of at least two classes, got {classes}")
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=REGULARISATION_C, max_iter=5000)
    model.fit(scaler.transform(x), list(labels))
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if len(classes) == 2:
        # sklearn keeps one row for two classes; spell out both for one predict path.
        coef, intercept = np.vstack([-0.5 * coef, 0.5 * coef]), np.array([-0.5, 0.5]) * intercept
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    return WindowClassifier(
        tuple(str(c) for c in model.classes_),
        rate_hz,
        CLASSIFIER_FEATURES,
        np.asarray(scaler.mean_, dtype=np.float64),
        scale,
        coef,
        intercept,
    )


def train_classifier(
    windows: Sequence[FloatArray], labels: Sequence[str], *, rate_hz: float = 50.0
) -> WindowClassifier:
    """Fit the classifier on labelled windows sampled at rate_hz."""
    return _fit(compute_feature_matrix(windows, rate_hz=rate_hz), labels, rate_hz)


def score_predictions(labels: Sequence[str], predicted: Sequence[str]) -> ClassifierMetrics:
    """Accuracy, macro F1 over the classes present, and the potholes F1 where potholes occur."""
    pothole_f1 = None
    if POTHOLE_CLASS in labels:
        pothole_f1 = float(
            f1_score(labels, predicted, labels=[POTHOLE_CLASS], average="macro", zero_division=0)
        )
    return ClassifierMetrics(
        float(accuracy_score(labels, predicted)),
        float(f1_score(labels, predicted, labels=sorted(set(labels)), average="macro")),
        pothole_f1,
        len(labels),
    )


def evaluate_classifier(
    classifier: WindowClassifier, windows: Sequence[FloatArray], labels: Sequence[str]
) -> ClassifierMetrics:
    """Scores of a trained classifier on labelled windows."""
    unknown = sorted(set(labels) - set(classifier.classes))
    if unknown:
        raise ClassifierError(f"classes {unknown} are not known to this model")
    return score_predictions(labels, classifier.predict(windows))


def cross_validate_classifier(
    windows: Sequence[FloatArray],
    labels: Sequence[str],
    *,
    rate_hz: float = 50.0,
    n_splits: int = 5,
    n_repeats: int = 3,
    seed: int = 0,
) -> list[ClassifierMetrics]:
    """Repeated stratified k-fold: each fold's model sees no window of its test fold."""
    x = compute_feature_matrix(windows, rate_hz=rate_hz)
    y = np.array(labels)
    out = []
    for repeat in range(n_repeats):
        predicted = np.empty_like(y)
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed + repeat)
        for train, test in folds.split(x, y):
            model = _fit(x[train], list(y[train]), rate_hz)
            scaled = (x[test] - model.mean) / model.scale
            best = np.argmax(scaled @ model.coef.T + model.intercept, axis=1)
            predicted[test] = [model.classes[i] for i in best]
        out.append(score_predictions(list(y), list(predicted)))
    return out


def save_classifier(classifier: WindowClassifier, path: Path) -> None:
    """Write the model as JSON (no pickle: loading a model file never runs code)."""
    doc = {
        "format": MODEL_FORMAT,
        "version": 1,
        "classes": list(classifier.classes),
        "rate_hz": classifier.rate_hz,
        "feature_names": list(classifier.feature_names),
        "mean": classifier.mean.tolist(),
        "scale": classifier.scale.tolist(),
        "coef": classifier.coef.tolist(),
        "intercept": classifier.intercept.tolist(),
    }
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")


def load_classifier(path: Path) -> WindowClassifier:
    """Read a model written by save_classifier, refusing other files and other feature sets."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ClassifierError(f"{path} is not a road anomaly model ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT or doc.get("version") != 1:
        raise ClassifierError(f"{path} is not a road anomaly model")
    if tuple(doc.get("feature_names", ())) != CLASSIFIER_FEATURES:
        raise ClassifierError(f"{path} was trained on other features; retrain it")
    try:
        return WindowClassifier(
            tuple(str(c) for c in doc["classes"]),
            float(doc["rate_hz"]),
            CLASSIFIER_FEATURES,
            np.array(doc["mean"], dtype=np.float64),
            np.array(doc["scale"], dtype=np.float64),
            np.array(doc["coef"], dtype=np.float64),
            np.array(doc["intercept"], dtype=np.float64),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ClassifierError(f"{path} is a damaged road anomaly model ({exc})") from exc
