"""`road` command group: IRI of a profile, train and evaluate the surface classifier."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# numpy, pandas and the analytics are imported when a command runs, so that
# `smartcity road --help` answers at once.

SPACING_TOLERANCE = 0.01  # relative to the spacing


@click.group(name="road")
def road() -> None:
    """Road health analytics: roughness (IRI) and surface anomaly classification."""


def _read_profile(path: Path) -> tuple[NDArray[np.float64], float]:
    """Elevations and their even spacing from a distance_m, elevation_m CSV."""
    import numpy as np
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"cannot read profile {path}: {exc}") from exc
    missing = {"distance_m", "elevation_m"} - set(frame.columns)
    if missing:
        raise click.UsageError(f"profile {path} lacks column(s) {sorted(missing)}")
    data = frame[["distance_m", "elevation_m"]].apply(pd.to_numeric, errors="coerce")
    if data.isna().any().any():
        raise click.UsageError(f"profile {path} has non-numeric or empty values")
    distance = data["distance_m"].to_numpy(dtype=np.float64)
    steps = np.diff(distance)
    if steps.size == 0 or steps.min() <= 0:
        raise click.UsageError("distance_m must increase from row to row")
    spacing_m = float(np.median(steps))
    if np.max(np.abs(steps - spacing_m)) > SPACING_TOLERANCE * spacing_m:
        raise click.UsageError("distance_m must be evenly spaced")
    return data["elevation_m"].to_numpy(dtype=np.float64), spacing_m


@road.command("iri")
@click.option("--profile", "profile_path", required=True, type=click.Path(path_type=Path))
def iri_command(profile_path: Path) -> None:
    """Print the IRI (m/km, ASTM E1926) of a longitudinal profile CSV."""
    from services.roadhealth.analytics.iri import ProfileInputError, compute_iri

    elevation_m, spacing_m = _read_profile(profile_path)
    try:
        iri = compute_iri(elevation_m, spacing_m)
    except ProfileInputError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(json.dumps({"iri_m_per_km": round(iri, 4)}))


@road.command("train-classifier")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--rate-hz", default=50.0, show_default=True, type=click.FloatRange(min=1.0))
@click.option(
    "--pieces",
    is_flag=True,
    help="Train on the 2 s piece of each window the live gate judges (the version-2 gate model).",
)
@click.option(
    "--short-pieces",
    is_flag=True,
    help="With --pieces: also cut every piece shorter, so the model judges pieces from 0.5 s "
    "(the live gate's model for short pieces).",
)
@click.option(
    "--simulated-passes",
    default=60,
    show_default=True,
    type=click.IntRange(min=0),
    help="With --pieces: simulated passes per kind (pothole, bump, plain) trained beside them.",
)
def train_command(
    data_dir: Path,
    out_path: Path,
    rate_hz: float,
    pieces: bool,
    short_pieces: bool,
    simulated_passes: int,
) -> None:
    """Train the surface classifier (the version 2 ridge ensemble) on DIR/<class>/*.csv windows
    and write the model."""
    from services.roadhealth.analytics.anomaly import ClassifierError
    from services.roadhealth.analytics.dataset import DatasetError, read_window_folder
    from services.roadhealth.analytics.ensemble import (
        GATE_SHORT_MIN_S,
        save_ensemble,
        train_ensemble,
        train_gate_ensemble,
    )
    from services.roadhealth.analytics.synthetic import SURFACE_CLASSES

    try:
        windows, labels = read_window_folder(data_dir, known_classes=SURFACE_CLASSES)
        classifier = (
            train_gate_ensemble(
                windows,
                labels,
                rate_hz=rate_hz,
                simulated_per_kind=simulated_passes,
                short_min_s=GATE_SHORT_MIN_S if short_pieces else None,
            )
            if pieces
            else train_ensemble(windows, labels, rate_hz=rate_hz)
        )
    except (DatasetError, ClassifierError) as exc:
        raise click.UsageError(str(exc)) from exc
    save_ensemble(classifier, out_path)
    click.echo(json.dumps({"model": str(out_path), "classes": list(classifier.classes)}))


@road.command("evaluate-classifier")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path))
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the scores as one JSON object.")
def evaluate_command(model_path: Path, data_dir: Path, as_json: bool) -> None:
    """Score a trained model (version 1 or 2) on DIR/<class>/*.csv windows."""
    from services.roadhealth.analytics.anomaly import ClassifierError
    from services.roadhealth.analytics.dataset import DatasetError, read_window_folder
    from services.roadhealth.analytics.ensemble import evaluate_any, load_any_classifier

    try:
        classifier = load_any_classifier(model_path)
    except ClassifierError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        windows, labels = read_window_folder(data_dir, known_classes=classifier.classes)
        metrics = evaluate_any(classifier, windows, labels)
    except (DatasetError, ClassifierError) as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(asdict(metrics)))
        return
    for key, value in asdict(metrics).items():
        click.echo(f"{key}: {value}")
