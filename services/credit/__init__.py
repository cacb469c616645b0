"""services/credit: SME credit ratings under consent (docs/architecture.md draws the package).

The names below are the package's public helpers for tests, benches and tools: demo data
(`_demo`), a statement history's hashing (`_history`), the shipped model's folder
(`_modelstore`), the feature-vector packing (`_vectors`) and the batch ratings' proofs and
record hash (`_batch`). Import them from here, never from
the private modules. They load on first use (PEP 562), so importing any module of the package
(e.g. its CLI for `--help`) still loads neither pandas nor SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.credit._batch import _record_hash as batch_record_hash
    from services.credit._batch import inquiry_proof_args
    from services.credit._demo import (
        demo_uscc,
        latest_features,
        statement_csv,
        synthetic_statements,
        training_frame,
    )
    from services.credit._history import features_hash, period_sort_key
    from services.credit._modelstore import SHIPPED_MODEL_DIR
    from services.credit._vectors import pack

# public name -> (private module, its name there)
_EXPORTS = {
    "SHIPPED_MODEL_DIR": ("services.credit._modelstore", "SHIPPED_MODEL_DIR"),
    "batch_record_hash": ("services.credit._batch", "_record_hash"),
    "demo_uscc": ("services.credit._demo", "demo_uscc"),
    "features_hash": ("services.credit._history", "features_hash"),
    "inquiry_proof_args": ("services.credit._batch", "inquiry_proof_args"),
    "latest_features": ("services.credit._demo", "latest_features"),
    "pack": ("services.credit._vectors", "pack"),
    "period_sort_key": ("services.credit._history", "period_sort_key"),
    "statement_csv": ("services.credit._demo", "statement_csv"),
    "synthetic_statements": ("services.credit._demo", "synthetic_statements"),
    "training_frame": ("services.credit._demo", "training_frame"),
}

__all__ = [
    "SHIPPED_MODEL_DIR",
    "batch_record_hash",
    "demo_uscc",
    "features_hash",
    "inquiry_proof_args",
    "latest_features",
    "pack",
    "period_sort_key",
    "statement_csv",
    "synthetic_statements",
    "training_frame",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # resolved once
    return value
