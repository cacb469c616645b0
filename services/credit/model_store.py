"""The model versions this service can run, and which one governance lets it rate with.

Versions are found on disk (the shipped `default_model/` and `DATA/credit/models/*/`), each
identified by the SHA-256 of its artefact. The chain decides which may rate: the active model is
the approved one most recently approved (a newer approval replaces an older model; retiring
it falls back to the previous one). Artefacts are loaded lazily and verified against their hash.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.ledger import LedgerPort
from services.credit import contract_terms
from services.credit.errors import ModelError
from services.credit.scoring.artefact import artefact_sha256, load_model, read_metadata
from services.credit.scoring.model import CreditModel

log = logging.getLogger(__name__)
SHIPPED_MODEL_DIR = Path(__file__).parent / "default_model"
HEADLINE = ("auc", "gini", "ks", "brier", "n")


@dataclass
class ModelVersion:
    sha256: str
    path: Path
    metadata: dict[str, Any]


@dataclass
class ModelStore:
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    _loaded: dict[str, CreditModel] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def discover(cls, data_dir: Path) -> ModelStore:
        """Every readable model directory: the shipped default and DATA/credit/models/*."""
        store = cls()
        candidates = [SHIPPED_MODEL_DIR, *sorted((data_dir / "credit" / "models").glob("*"))]
        for path in candidates:
            if not (path / "metadata.json").is_file():
                continue
            try:
                metadata = read_metadata(path)
                digest = artefact_sha256(path)
            except (ModelError, OSError) as exc:
                log.warning("skipping credit model %s: %s", path, exc)
                continue
            if digest != metadata.get("artefact_sha256"):
                log.warning("skipping credit model %s: artefact hash differs from metadata", path)
                continue
            store.versions[digest] = ModelVersion(digest, path, metadata)
        return store

    def load(self, sha256: str) -> CreditModel:
        """The hash-verified model (loaded once)."""
        with self._lock:
            if sha256 not in self._loaded:
                version = self.versions.get(sha256)
                if version is None:
                    raise ModelError(f"model {sha256} is not installed on this service")
                model = load_model(version.path, expected_sha256=sha256)
                _ = model.compiled  # flatten the trees now, not on the first rating
                self._loaded[sha256] = model
            return self._loaded[sha256]

    def active(self, ledger: LedgerPort) -> tuple[str, dict[str, Any]] | None:
        """The installed model most recently approved on the chain, with its chain record."""
        best: tuple[str, dict[str, Any]] | None = None
        for sha in self.versions:
            record = ledger.read(contract_terms.NAMESPACE, contract_terms.model_key(sha))
            if record is None or record["status"] != "approved":
                continue
            if best is None or record["approved_height"] > best[1]["approved_height"]:
                best = (sha, record)
        return best


def chain_registration(version: ModelVersion) -> Any:
    """The `register_model` arguments of a version: hashes and validation metrics."""
    meta = version.metadata
    metrics = meta.get("metrics", {})
    holdout = metrics.get("holdout", {})
    summary: dict[str, Any] = {}
    for name, report in holdout.items():
        summary[name] = {k: report[k] for k in HEADLINE if k in report}
    gbm = holdout.get("gbm", {})
    cv = {
        name: {k: v for k, v in report.items() if k != "per_fold"}
        for name, report in metrics.get("cross_validation", {}).items()
    }
    return _finite(
        {
            "sha256": version.sha256,
            "data_sha256": str(meta.get("data_sha256", "0" * 64)),
            "features": len(meta.get("feature_names", [])) or 1,
            "description": str(meta.get("model", "credit model"))[:256],
            "metrics": {
                "holdout": summary,
                "calibration_by_decile": gbm.get("calibration_by_decile", []),
                "bad_rate_by_grade": gbm.get("bad_rate_by_grade", []),
                "cross_validation": cv,
                "n_train": meta.get("n_train"),
                "n_holdout": meta.get("n_holdout"),
                "seed": meta.get("seed"),
            },
        }
    )


def _finite(value: Any) -> Any:
    """The value with NaN and infinities replaced by None (canonical JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
