"""services/credit: SME credit ratings under consent (docs/architecture.md draws the package).

The names below are the package's public helpers for tests, benches and tools: demo data
(`demo`), a statement history's hashing (`service.history`), the shipped model's folder
(`model_store`), the feature-vector packing (`service.vectors`) and the batch ratings' proofs
and record hash (`service.batch_ratings`). They load on first use (PEP 562), so importing any
module of the package (e.g. its CLI for `--help`) still loads neither pandas nor SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.common.lazy import lazy_exports

if TYPE_CHECKING:
    from services.credit.demo import (
        demo_uscc,
        latest_features,
        statement_csv,
        synthetic_statements,
        training_frame,
    )
    from services.credit.model_store import SHIPPED_MODEL_DIR
    from services.credit.service.batch_ratings import inquiry_proof_args
    from services.credit.service.batch_ratings import record_hash as batch_record_hash
    from services.credit.service.history import features_hash, period_sort_key
    from services.credit.service.vectors import pack

# public name -> (module, its name there); a name of None is the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "SHIPPED_MODEL_DIR": ("services.credit.model_store", "SHIPPED_MODEL_DIR"),
    "batch_record_hash": ("services.credit.service.batch_ratings", "record_hash"),
    "demo_uscc": ("services.credit.demo", "demo_uscc"),
    "features_hash": ("services.credit.service.history", "features_hash"),
    "inquiry_proof_args": ("services.credit.service.batch_ratings", "inquiry_proof_args"),
    "latest_features": ("services.credit.demo", "latest_features"),
    "pack": ("services.credit.service.vectors", "pack"),
    "period_sort_key": ("services.credit.service.history", "period_sort_key"),
    "statement_csv": ("services.credit.demo", "statement_csv"),
    "synthetic_statements": ("services.credit.demo", "synthetic_statements"),
    "training_frame": ("services.credit.demo", "training_frame"),
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
