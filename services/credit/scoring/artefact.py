"""Model artefacts on disk: `model.joblib` plus `metadata.json`, bound by the file's SHA-256.

The chain registers a model version by the SHA-256 of `model.joblib`. Loading hashes the file
first and refuses it (before unpickling anything) unless the hash equals the one recorded in
`metadata.json` and, when given, the one the caller expects (e.g. read from the chain).

A pickle names the classes it holds by module path. Artefacts saved before the scoring code
moved into `services/credit/scoring/` name `services.credit.scorecard.WoeBinner` and
`services.credit.impute.RareMissingImputer`; loading maps those paths to the new ones, so an
operator's model saved then still loads, with the hash the chain approved it under.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
from joblib.numpy_pickle import NumpyUnpickler, _validate_fileobject_and_memmap

from services.credit.errors import ModelError, ModelIntegrityError
from services.credit.scoring.dataset import sha256_file
from services.credit.scoring.model import CreditModel
from services.credit.scoring.rating import ScoreScale

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
COMPRESSION = ("zlib", 6)
# The modules that moved into scoring/, by their old path (what older pickles name)
MOVED_MODULES = {
    f"services.credit.{name}": f"services.credit.scoring.{name}"
    for name in (
        "artefact",
        "compiled",
        "dataset",
        "drift",
        "features",
        "impute",
        "metrics",
        "model",
        "rating",
        "scorecard",
        "synthetic",
        "training",
    )
}


def save_model(bundle: dict[str, Any], out_dir: str | Path) -> CreditModel:
    """Write the artefact and its metadata; return the model as `load_model` would."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle, out / MODEL_FILE, compress=COMPRESSION)
    digest = sha256_file(out / MODEL_FILE)
    metadata = {**bundle["metadata"], "artefact_sha256": digest, "artefact_file": MODEL_FILE}
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    (out / METADATA_FILE).write_text(text, encoding="utf-8")
    return CreditModel(bundle["gbm"], bundle["scorecard"], metadata, digest)


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    """Return the metadata recorded next to an artefact."""
    path = Path(model_dir) / METADATA_FILE
    try:
        metadata: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"no model metadata at {str(path)!r}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable model metadata {str(path)!r}: {exc}") from exc
    return metadata


def load_model(
    model_dir: str | Path,
    *,
    expected_sha256: str | None = None,
    scale: ScoreScale | None = None,
) -> CreditModel:
    """Verify the artefact's hash, then load it; raise `ModelIntegrityError` on any mismatch."""
    metadata = read_metadata(model_dir)
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"no model artefact at {str(path)!r}")
    digest = sha256_file(path)
    # Verify the file is the one its metadata describes, and the one the caller trusts
    if digest != metadata.get("artefact_sha256"):
        raise ModelIntegrityError(
            f"artefact hash {digest} does not match metadata {metadata.get('artefact_sha256')}"
        )
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ModelIntegrityError(f"artefact hash {digest} is not the expected {expected_sha256}")
    bundle = _unpickle(path)
    return CreditModel(bundle["gbm"], bundle["scorecard"], metadata, digest, scale or ScoreScale())


def artefact_sha256(model_dir: str | Path) -> str:
    """Return the SHA-256 of a model directory's artefact file."""
    return hashlib.sha256((Path(model_dir) / MODEL_FILE).read_bytes()).hexdigest()


class _ArtefactUnpickler(NumpyUnpickler):  # type: ignore[misc]
    """joblib's unpickler, reading a class of a moved module from where it lives now."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with (
            path.open("rb") as raw,
            _validate_fileobject_and_memmap(raw, str(path), None) as (fobj, _),
        ):
            if isinstance(fobj, str):  # joblib < 0.10 kept arrays in side files
                raise ModelError(f"{str(path)!r} was written by a joblib older than 0.10")
            bundle: dict[str, Any] = _ArtefactUnpickler(str(path), fobj, True).load()
    except ModelError:
        raise
    except Exception as exc:  # joblib/pickle raise many types on a corrupt file
        raise ModelError(f"cannot load model artefact {str(path)!r}: {exc}") from exc
    if not isinstance(bundle, dict) or not {"gbm", "scorecard", "metadata"} <= set(bundle):
        raise ModelError(f"{str(path)!r} is not a credit model artefact")
    return bundle
