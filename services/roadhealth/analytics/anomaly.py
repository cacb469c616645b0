"""Learned per-window surface classifier: honest cross-validation and a JSON model file.

Standardised window features into a multinomial logistic regression, its regularisation chosen
by stratified CV on the training windows only (so cross_validate_classifier is nested CV).
Random forests, extra trees, an RBF SVM, a bag-of-words codebook of short sub-windows (the
method of Gonzalez et al. 2017) and extra multiresolution (Haar) and autocorrelation features
were tried on the Gonzalez et al. 2017 windows and did worse under the same CV (docs/roadhealth.md).
Random convolution kernel features (kernels.py) averaged with ridge on these features score
higher under the same CV (0.943) but call some simulated potholes plain road, which the live
gate cannot afford, so they are not used here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from services.roadhealth.analytics.feature_rows import compute_feature_rows
from services.roadhealth.analytics.features import FEATURE_NAMES
from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
MODEL_FORMAT = "smartcity.roadhealth.anomaly-classifier"
POTHOLE_CLASS = "potholes"
# Window length is left out: it reflects how a dataset was cut, not the road surface.
CLASSIFIER_FEATURES = tuple(n for n in FEATURE_NAMES if n != "duration_s")
_FEATURE_INDEX = [FEATURE_NAMES.index(n) for n in CLASSIFIER_FEATURES]
REGULARISATION_C = 0.3  # when too few windows per class for an inner CV
REGULARISATION_GRID = (0.1, 0.3, 1.0)
INNER_FOLDS = 5


class ClassifierError(AnalyticsError):
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
    regularisation_c: float = REGULARISATION_C
    model_id: str = ""  # content hash of the saved model: which model judged a window

    def predict_proba(
        self, windows: Sequence[FloatArray], *, rate_hz: float | None = None
    ) -> FloatArray:
        """Class probabilities per window (sampled at rate_hz, else the model's own rate,
        resampled to the model's rate), columns in the order of classes."""
        if rate_hz is not None and rate_hz != self.rate_hz:
            windows = [resample(w, from_hz=rate_hz, to_hz=self.rate_hz) for w in windows]
        x = (compute_feature_matrix(windows, rate_hz=self.rate_hz) - self.mean) / self.scale
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        return np.asarray(prob / prob.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, windows: Sequence[FloatArray]) -> list[str]:
        """Most likely class of each window."""
        return [self.classes[i] for i in np.argmax(self.predict_proba(windows), axis=1)]

    def predict_features(self, x: FloatArray) -> list[str]:
        """Most likely class of each row of already computed features."""
        best = np.argmax(((x - self.mean) / self.scale) @ self.coef.T + self.intercept, axis=1)
        return [self.classes[i] for i in best]


def resample(acc: FloatArray, *, from_hz: float, to_hz: float) -> FloatArray:
    """A window at another sampling rate (polyphase, anti-aliased), e.g. 100 Hz to 50 Hz."""
    ratio = Fraction(to_hz / from_hz).limit_denominator(100)
    out = signal.resample_poly(
        np.asarray(acc, dtype=np.float64), ratio.numerator, ratio.denominator
    )
    return np.asarray(out, dtype=np.float64)


def compute_feature_matrix(windows: Sequence[FloatArray], *, rate_hz: float) -> FloatArray:
    """Classifier features of every window, one row each (the windows of one length computed
    together: feature_rows.py)."""
    rows = compute_feature_rows(windows, rate_hz=rate_hz)[:, _FEATURE_INDEX]
    return np.asarray(rows, dtype=np.float64).reshape(len(windows), len(_FEATURE_INDEX))


def _choose_c(x: FloatArray, labels: Sequence[str]) -> float:
    """The regularisation with the best accuracy in stratified CV over these windows alone."""
    y = np.asarray(labels)
    folds = min(INNER_FOLDS, min(np.unique(y, return_counts=True)[1]))
    if folds < 2:
        return REGULARISATION_C
    split = list(StratifiedKFold(int(folds), shuffle=True, random_state=0).split(x, y))
    scores = []
    for c in REGULARISATION_GRID:
        right = 0
        for train, test in split:
            model = _fit_c(x[train], list(y[train]), 0.0, c)
            right += int(np.sum(np.array(model.predict_features(x[test])) == y[test]))
        scores.append(right)
    return REGULARISATION_GRID[int(np.argmax(scores))]


def _fit(x: FloatArray, labels: Sequence[str], rate_hz: float) -> WindowClassifier:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ClassifierError(f"need windows of at least two classes, got {classes}")
    return _fit_c(x, labels, rate_hz, _choose_c(x, labels))


def _fit_c(x: FloatArray, labels: Sequence[str], rate_hz: float, c: float) -> WindowClassifier:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(scaler.transform(x), list(labels))
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if len(model.classes_) == 2:
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
        c,
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
    """Repeated stratified k-fold, nested: each fold's model (and its choice of regularisation)
    sees no window of its test fold."""
    x = compute_feature_matrix(windows, rate_hz=rate_hz)
    y = np.array(labels)
    out = []
    for repeat in range(n_repeats):
        predicted = np.empty_like(y)
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=seed + repeat)
        for train, test in folds.split(x, y):
            model = _fit(x[train], list(y[train]), rate_hz)
            predicted[test] = model.predict_features(x[test])
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
        "regularisation_c": classifier.regularisation_c,
    }
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")


def load_classifier(path: Path) -> WindowClassifier:
    """Read a model written by save_classifier, refusing other files and other feature sets."""
    try:
        raw = path.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
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
            float(doc.get("regularisation_c", REGULARISATION_C)),
            hashlib.sha256(raw).hexdigest()[:16],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ClassifierError(f"{path} is a damaged road anomaly model ({exc})") from exc
