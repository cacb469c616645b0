"""The shipped default model loads with a verified hash and rates an SME from its statements."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest

from services.credit.scoring.artefact import load_model, read_metadata
from services.credit.scoring.features import POLISH_FEATURES, polish_attributes
from services.credit.scoring.model import CreditModel
from services.credit.scoring.synthetic import one_period_statements
from services.credit.statements import load_statements

DEFAULT = Path(__file__).resolve().parents[2] / "services" / "credit" / "default_model"


@pytest.fixture(scope="module")
def default_model() -> CreditModel:
    return load_model(DEFAULT)


def test_shipped_artefact_is_small_and_documented(default_model: CreditModel) -> None:
    assert (DEFAULT / "model.joblib").stat().st_size < 2_000_000
    meta = read_metadata(DEFAULT)
    assert meta["artefact_sha256"] == default_model.sha256
    assert tuple(meta["feature_names"]) == POLISH_FEATURES
    assert meta["metrics"]["holdout"]["gbm"]["auc"] > 0.9
    readme = (DEFAULT / "README.md").read_text()
    assert "CC BY 4.0" in readme
    assert "Tomczak" in readme


HEADER = (
    "period,currency,unit,total_assets,current_assets,current_liabilities,total_liabilities,"
    "equity,sales,net_profit,profit_before_tax,retained_earnings,ebit,operating_profit,"
    "depreciation,inventory,receivables,cash,interest_expense"
)
SOUND_2022 = "2022,CNY,thousands,1000,600,300,500,500,1200,50,60,200,70,70,30,150,200,100,10"
SOUND_2023 = "2023,CNY,thousands,1050,620,310,510,540,1300,55,65,230,75,75,30,160,210,110,10"
DISTRESSED_2023 = (
    "2023,CNY,thousands,1050,400,900,1150,-100,800,-150,-150,-300,-120,-120,30,160,210,10,40"
)


def rate(model: CreditModel, *rows: str) -> tuple[float, str, list[str]]:
    rating = model.rate_statements(load_statements("\n".join([HEADER, *rows]).encode()))
    assert rating.model_sha256 == model.sha256
    return rating.probability_of_default, rating.grade, [r.feature for r in rating.reasons]


def test_sound_sme_rates_investment_grade(default_model: CreditModel) -> None:
    pd_value, grade, _ = rate(default_model, SOUND_2022, SOUND_2023)
    assert pd_value < 0.025
    assert grade in {"AAA", "AA", "A", "BBB", "BB"}


def test_distressed_sme_rates_worse_with_loss_and_leverage_reasons(
    default_model: CreditModel,
) -> None:
    sound, _, _ = rate(default_model, SOUND_2022, SOUND_2023)
    distressed, grade, reasons = rate(default_model, SOUND_2022, DISTRESSED_2023)
    assert distressed > 5 * sound
    assert grade in {"B", "CCC", "CC", "C"}
    assert reasons
    assert all(r.startswith("Attr") for r in reasons)


def test_batch_from_many_statements(default_model: CreditModel) -> None:
    statements = one_period_statements(500, seed=4)
    ratings = default_model.rate_many(polish_attributes(statements, by="sme"))
    assert len(ratings) == 500
    assert all(0 < r.probability_of_default < 1 for r in ratings)


def test_single_rating_path_matches_the_batch_path(default_model: CreditModel) -> None:
    # A single rating walks the flattened trees; a batch goes through scikit-learn
    features = polish_attributes(one_period_statements(200, seed=5), by="sme")
    assert default_model.compiled is not None
    batch = default_model.rate_many(features)
    for i, record in enumerate(features.head(20).to_dict(orient="records")):
        single = default_model.rate(cast("dict[str, float | None]", record))
        assert single.probability_of_default == pytest.approx(
            batch[i].probability_of_default, rel=1e-9, abs=1e-12
        )
        assert single.grade == batch[i].grade
        assert [r.feature for r in single.reasons] == [r.feature for r in batch[i].reasons]
    values = default_model.matrix(features)
    np.testing.assert_allclose(
        default_model.compiled.predict_pd(values),
        default_model.gbm.predict_proba(values)[:, 1],
        rtol=1e-9,
        atol=1e-12,
    )
