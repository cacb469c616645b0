"""`credit` command group: train a model from a labelled CSV and evaluate it on another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from services.credit.errors import CreditError

# The training seed, duplicated here so that `smartcity credit --help` does not import
# scikit-learn; tests/credit/test_cli.py checks it against scoring.training.DEFAULT_SEED
DEFAULT_SEED = 20160365


@click.group(name="credit")
def credit() -> None:
    """SME credit models: train and evaluate."""


@credit.command(name="train")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--label", default="class", show_default=True, help="0/1 label column.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=int)
@click.option("--cv-folds", default=5, show_default=True, type=click.IntRange(min=0))
@click.option("--test-size", default=0.2, show_default=True, type=click.FloatRange(0.05, 0.5))
def train_command(
    data_path: Path, out_dir: Path, label: str, seed: int, cv_folds: int, test_size: float
) -> None:
    """Train the calibrated gradient-boosted model and scorecard; write MODEL_DIR."""
    from services.credit.scoring.artefact import save_model
    from services.credit.scoring.dataset import read_labelled_csv
    from services.credit.scoring.training import TrainingConfig, train

    config = TrainingConfig(seed=seed, label=label, cv_folds=cv_folds, test_size=test_size)
    try:
        data = read_labelled_csv(data_path, label=label)
        model = save_model(train(data, config=config), out_dir)
    except CreditError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = _summary(model.metadata)
    click.echo(json.dumps(summary, sort_keys=True))


@credit.command(name="evaluate")
@click.option(
    "--model", "model_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", default=None, help="Label column (default: the model's).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON metrics.")
def evaluate_command(model_dir: Path, data_path: Path, label: str | None, as_json: bool) -> None:
    """Evaluate MODEL_DIR on a labelled CSV: AUC, Gini, KS, Brier and n."""
    from services.credit.scoring.artefact import load_model
    from services.credit.scoring.dataset import read_labelled_csv, require_both_classes

    try:
        model = load_model(model_dir)
        data = read_labelled_csv(data_path, label=label or model.metadata.get("label", "class"))
        require_both_classes(data.labels, minimum=1)
        report = model.evaluate(data.features, data.labels)
    except CreditError as exc:
        raise click.ClickException(str(exc)) from exc
    headline = {k: report[k] for k in ("auc", "gini", "ks", "brier", "n")}
    if as_json:
        click.echo(json.dumps(headline))
        return
    click.echo(f"model {model.sha256}")
    click.echo(" ".join(f"{k}={v}" for k, v in headline.items()))
    for row in report["bad_rate_by_grade"]:
        click.echo(
            f"  {row['grade']:>3} n={row['n']} mean_pd={row['mean_pd']} bad_rate={row['bad_rate']}"
        )


def _summary(metadata: dict[str, Any]) -> dict[str, Any]:
    holdout = metadata["metrics"]["holdout"]
    cv = metadata["metrics"]["cross_validation"]
    return {
        "artefact_sha256": metadata["artefact_sha256"],
        "data_sha256": metadata["data_sha256"],
        "holdout": {
            m: {k: holdout[m][k] for k in ("auc", "gini", "ks", "brier", "n")} for m in holdout
        },
        "cv_auc": {m: [cv[m]["auc_mean"], cv[m]["auc_std"]] for m in cv},
    }
