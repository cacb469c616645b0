"""Errors of the credit service layer: the package's `CreditError` root crossed with HTTP kinds.

CreditError (services.credit.errors)          ServiceError (services.common.errors)
├── SmeNotFound, RatingNotFound, ...    x     NotFound       404
├── ConsentRequired                     x     Forbidden      403
├── NotYourSme                          x     Forbidden      403
├── BadInput                            x     Unprocessable  422
└── ModelUnavailable                    x     Upstream       503

AlreadyExists (409) and ChainRefused (409, a contract refused the write) are the services'
shared ones (services.common.errors), re-exported here.

`as_service_error` translates the colleague-owned domain errors (InvalidUSCC, StatementError,
FeatureMismatchError, ModelError) at this boundary, so the one error handler renders them all.
"""

from __future__ import annotations

from typing import Any

from services.common.errors import AlreadyExists as AlreadyExists  # shared, re-exported
from services.common.errors import ChainRefused as ChainRefused  # shared, re-exported
from services.common.errors import (
    Forbidden,
    NotFound,
    ServiceError,
    Unprocessable,
    Upstream,
)
from services.credit.errors import (
    CreditError,
    FeatureMismatchError,
    InvalidUSCC,
    ModelError,
    StatementError,
)


class SmeNotFound(CreditError, NotFound):
    """No SME registered with this USCC."""

    code = "unknown_sme"


class RatingNotFound(CreditError, NotFound):
    """The SME has not been rated yet."""

    code = "not_rated"


class ModelNotFound(CreditError, NotFound):
    """No model with this SHA-256 is registered or installed."""

    code = "unknown_model"


class ConsentRequired(CreditError, Forbidden):
    """No live consent of the SME for this bank and purpose."""

    code = "no_consent"


class NotYourSme(CreditError, Forbidden):
    """The caller is neither this SME nor an agency acting for it."""

    code = "not_your_sme"


class BadInput(CreditError, Unprocessable):
    """Input that breaks a rule: a USCC's check character, statement rows, features, purpose."""

    code = "invalid_input"


class TooLarge(CreditError, ServiceError):
    """An upload over the size limit."""

    status, code = 413, "too_large"


class ModelUnavailable(CreditError, Upstream):
    """The scoring model is not usable yet (not installed or not approved on the chain)."""

    code = "model_unavailable"


def as_service_error(exc: CreditError) -> ServiceError:
    """The HTTP-facing error for a domain error raised by the credit package."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, InvalidUSCC):
        char = exc.code[exc.position - 1] if exc.position <= len(exc.code) else None
        return BadInput(
            str(exc),
            code="invalid_uscc",
            details={"position": exc.position, "character": char, "reason": exc.reason},
        )
    if isinstance(exc, StatementError):
        problems: list[dict[str, Any]] = [
            {"row": p.row, "column": p.column, "problem": p.message} for p in exc.problems
        ]
        first = str(exc.problems[0]) if exc.problems else "rejected"
        return BadInput(
            f"statement file rejected, {len(problems)} problem(s); first: {first};"
            " nothing was stored",
            code="invalid_statements",
            details=problems,
        )
    if isinstance(exc, FeatureMismatchError):
        return BadInput(str(exc), code="feature_mismatch")
    if isinstance(exc, ModelError):
        return ModelUnavailable(str(exc))
    return BadInput(str(exc))
