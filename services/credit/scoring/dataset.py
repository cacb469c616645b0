"""Labelled datasets for training and evaluation: numeric features, a 0/1 label, empty = missing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from services.credit.errors import TrainingDataError

MIN_PER_CLASS = 10


@dataclass(frozen=True)
class LabelledData:
    """Feature matrix, 0/1 labels and the SHA-256 of the bytes they were read from."""

    features: pd.DataFrame
    labels: npt.NDArray[np.int_]
    sha256: str

    @property
    def feature_names(self) -> list[str]:
        """Feature column names, in file order."""
        return [str(c) for c in self.features.columns]


def sha256_file(path: str | Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labelled_csv(path: str | Path, *, label: str = "class") -> LabelledData:
    """Read a CSV of numeric features and a 0/1 label, or raise `TrainingDataError` saying why."""
    try:
        frame = pd.read_csv(path, na_values=[""], keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TrainingDataError(f"cannot read CSV {str(path)!r}: {exc}") from exc
    labels = _labels(frame, label)
    features = _numeric_features(frame.drop(columns=[label]))
    return LabelledData(features, labels, sha256_file(path))


def require_both_classes(labels: npt.NDArray[np.int_], *, minimum: int = MIN_PER_CLASS) -> None:
    """Raise unless each class has at least `minimum` rows (training needs both)."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        only = "1" if negatives == 0 else "0"
        raise TrainingDataError(f"the label has one class only (every row is {only})")
    if min(positives, negatives) < minimum:
        raise TrainingDataError(
            f"too few rows per class to train and validate: {positives} positive and "
            f"{negatives} negative, need at least {minimum} of each"
        )


def _labels(frame: pd.DataFrame, label: str) -> npt.NDArray[np.int_]:
    if label not in frame.columns:
        raise TrainingDataError(
            f"no label column {label!r} (columns: {', '.join(map(str, frame.columns[:10]))}"
            f"{', ...' if len(frame.columns) > 10 else ''})"
        )
    values = pd.to_numeric(frame[label], errors="coerce")
    bad = frame.index[values.isna() | ~values.isin([0, 1])]
    if len(bad):
        first = bad[0]
        raise TrainingDataError(
            f"label {label!r} must be 0 or 1: row {int(first) + 2} has {frame.at[first, label]!r}"
            f" ({len(bad)} bad row(s))"
        )
    return values.to_numpy(dtype=np.int_)


def _numeric_features(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.shape[1] == 0:
        raise TrainingDataError("no feature columns besides the label")
    problems = []
    for column in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[values.isna() & frame[column].notna()]
        if len(bad):
            problems.append(f"{column!r} (row {int(bad[0]) + 2}: {frame.at[bad[0], column]!r})")
    if problems:
        raise TrainingDataError(f"non-numeric feature column(s): {', '.join(problems)}")
    numeric: pd.DataFrame = frame.apply(pd.to_numeric).astype(np.float64)
    # Infinite ratios (a zero denominator upstream) carry no more information than missing.
    return numeric.replace([np.inf, -np.inf], np.nan)


def labelled_from_frame(frame: pd.DataFrame, *, label: str = "class") -> LabelledData:
    """Build a `LabelledData` from an in-memory frame; its hash is of the frame's CSV bytes."""
    raw = frame.to_csv(index=False).encode()
    labels = _labels(frame, label)
    features = _numeric_features(frame.drop(columns=[label]))
    return LabelledData(features, labels, hashlib.sha256(raw).hexdigest())
