"""Read a folder of labelled windows: one sub-folder per class, CSV files with an acc_z column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from services.roadhealth.analytics.features import MIN_WINDOW_SAMPLES
from services.roadhealth.errors import AnalyticsError

FloatArray = NDArray[np.float64]
ACC_COLUMN = "acc_z"


class DatasetError(AnalyticsError):
    """A window folder or file that is not of the expected shape."""


def read_window_csv(path: Path) -> FloatArray:
    """The acc_z column of one CSV window as floats, refusing missing or non-numeric values."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read CSV ({exc})") from exc
    if ACC_COLUMN not in frame.columns:
        raise DatasetError(f"{path}: no {ACC_COLUMN!r} column (found {list(frame.columns)})")
    values = pd.to_numeric(frame[ACC_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    if values.size < MIN_WINDOW_SAMPLES:
        raise DatasetError(f"{path}: {values.size} samples, need at least {MIN_WINDOW_SAMPLES}")
    if not np.all(np.isfinite(values)):
        row = int(np.flatnonzero(~np.isfinite(values))[0]) + 2
        raise DatasetError(f"{path}: non-numeric or missing {ACC_COLUMN} at line {row}")
    return values


def read_window_folder(
    root: Path, *, known_classes: tuple[str, ...]
) -> tuple[list[FloatArray], list[str]]:
    """All windows and their class labels under root, refusing unknown class folders."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root} has no class folders (expected some of {known_classes})")
    unknown = [p.name for p in folders if p.name not in known_classes]
    if unknown:
        raise DatasetError(f"unknown class folder(s) {unknown}; known: {list(known_classes)}")
    windows: list[FloatArray] = []
    labels: list[str] = []
    for folder in folders:
        for path in sorted(folder.glob("*.csv")):
            windows.append(read_window_csv(path))
            labels.append(folder.name)
    if not windows:
        raise DatasetError(f"{root} holds no CSV windows")
    return windows, labels
