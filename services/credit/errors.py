"""Errors of the SME credit package, all rooted at `CreditError`.

CreditError
├── InvalidUSCC            a Unified Social Credit Code is malformed (position, reason)
├── StatementError         a financial-statement file is rejected (problems, row by row)
├── TrainingDataError      a labelled CSV cannot be used to train or evaluate a model
├── FeatureMismatchError   the features offered do not match the model's features
├── ModelError             a model artefact is missing, unreadable or inconsistent
│   └── ModelIntegrityError   the artefact's SHA-256 is not the one recorded or expected
├── DriftError             population-stability input is unusable
└── the service's refusals (services.credit._service_errors, each a ServiceError too)
    ├── SmeNotFound, RatingNotFound, ModelNotFound [404]
    ├── ConsentRequired, NotYourSme [403]
    ├── BadInput [422], TooLarge [413]
    └── ModelUnavailable [503]
"""

from __future__ import annotations

from dataclasses import dataclass


class CreditError(Exception):
    """Root of every error the credit package raises on purpose."""


class InvalidUSCC(CreditError):
    """A Unified Social Credit Code failed validation at a 1-based character position."""

    def __init__(self, code: str, position: int, reason: str) -> None:
        self.code = code
        self.position = position
        self.reason = reason
        super().__init__(f"invalid USCC {code!r}: character {position}: {reason}")


@dataclass(frozen=True)
class Problem:
    """One row-level problem in an uploaded file (row is the spreadsheet row; header is row 1)."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class StatementError(CreditError):
    """A financial-statement file was rejected; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"statement file rejected, {len(problems)} problem(s):\n{lines}")


class TrainingDataError(CreditError):
    """A labelled dataset cannot be used for training or evaluation."""


class FeatureMismatchError(CreditError):
    """The columns offered for rating or evaluation are not the model's features."""


class ModelError(CreditError):
    """A model artefact is missing, unreadable or inconsistent with its metadata."""


class ModelIntegrityError(ModelError):
    """A model artefact's SHA-256 differs from the recorded or expected hash."""


class DriftError(CreditError):
    """Population-stability inputs are empty or unusable."""
