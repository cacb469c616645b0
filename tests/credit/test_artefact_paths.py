"""A model saved before the scoring code moved into scoring/ still loads, and rates the same."""

from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path

import joblib
import pytest

from services.credit.errors import ModelError
from services.credit.scoring import impute, scorecard
from services.credit.scoring.artefact import MODEL_FILE, load_model, save_model
from services.credit.scoring.model import CreditModel
from services.credit.scoring.synthetic import synthetic_frame

SHIPPED = Path(__file__).resolve().parents[2] / "services" / "credit" / "default_model"


def pickled_modules(model_dir: Path) -> set[str]:
    """The services.credit modules a model artefact's pickle names (save_model writes zlib)."""
    stream = zlib.decompress((model_dir / MODEL_FILE).read_bytes())
    return {name.decode() for name in re.findall(rb"services\.credit[\w.]*", stream)}


def save_with_old_paths(model_dir: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write a model as the code before the move did: its classes under their old modules."""
    bundle = joblib.load(model_dir / MODEL_FILE)  # written with today's paths
    with monkeypatch.context() as patch:
        for module, cls, old in (
            (scorecard, scorecard.WoeBinner, "services.credit.scorecard"),
            (impute, impute.RareMissingImputer, "services.credit.impute"),
        ):
            patch.setattr(cls, "__module__", old)
            patch.setitem(sys.modules, old, module)
        save_model(bundle, out)


def test_a_model_saved_with_the_old_module_paths_loads_and_rates_the_same(
    model_dir: Path, model: CreditModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_dir = tmp_path / "saved-before-the-move"
    save_with_old_paths(model_dir, old_dir, monkeypatch)
    assert pickled_modules(old_dir) == {"services.credit.scorecard", "services.credit.impute"}
    # Verify plain unpickling cannot find those modules any more: the loader's mapping does
    with pytest.raises(ModuleNotFoundError, match=r"services\.credit\.(scorecard|impute)"):
        joblib.load(old_dir / MODEL_FILE)

    old = load_model(old_dir)

    frame = synthetic_frame(300, seed=21).drop(columns="class")
    assert old.sha256 != model.sha256  # other bytes, so the chain knows it by another hash
    before = [r.probability_of_default for r in old.rate_many(frame)]
    after = [r.probability_of_default for r in model.rate_many(frame)]
    assert before == after
    assert [r.reasons for r in old.rate_many(frame)] == [r.reasons for r in model.rate_many(frame)]


def test_the_shipped_model_names_its_classes_where_they_live() -> None:
    assert pickled_modules(SHIPPED) == {
        "services.credit.scoring.scorecard",
        "services.credit.scoring.impute",
    }
    joblib.load(SHIPPED / MODEL_FILE)  # no mapping needed: any joblib user can open it


def test_a_model_naming_a_module_that_never_existed_is_refused_clearly(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = joblib.load(model_dir / MODEL_FILE)  # written with today's paths
    with monkeypatch.context() as patch:
        patch.setattr(scorecard.WoeBinner, "__module__", "services.credit.nowhere")
        patch.setitem(sys.modules, "services.credit.nowhere", scorecard)
        save_model(bundle, tmp_path / "odd")
    with pytest.raises(ModelError, match=r"cannot load model artefact .*services\.credit\.nowhere"):
        load_model(tmp_path / "odd")
