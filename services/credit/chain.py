"""The credit service's chain access: relayed or self-signed writes, refusals mapped to HTTP."""

from __future__ import annotations

from services.common.chain import ServiceChain
from services.common.errors import Forbidden, NotFound, ServiceError, Unprocessable
from services.credit import contract_terms
from services.credit._service_errors import AlreadyExists, ConsentRequired

_FORBIDDEN = {"no_consent", "consent_revoked", "consent_expired", "consent_not_started"}
_CONFLICT = {"sme_exists", "model_exists", "model_not_pending", "model_retired"}
_NOT_FOUND = {"unknown_sme", "unknown_model", "unknown_proposal"}
_UNPROCESSABLE = {
    "unknown_org",
    "not_sme",
    "unknown_key",
    "unknown_bank",
    "bad_uscc",
    "bad_period",
    "bad_args",
    "bad_params",
}
# Contract error code -> the service error a caller gets (others: ChainRefused)
_REFUSALS: dict[str, type[ServiceError]] = {
    **dict.fromkeys(_FORBIDDEN, ConsentRequired),
    "forbidden": Forbidden,
    **dict.fromkeys(_CONFLICT, AlreadyExists),
    **dict.fromkeys(_NOT_FOUND, NotFound),
    **dict.fromkeys(_UNPROCESSABLE, Unprocessable),
}


class CreditChain(ServiceChain):
    """Reads and writes of the credit contract; a refusal's details name its tx and height."""

    namespace = contract_terms.NAMESPACE
    refusals = _REFUSALS
    refusal_details = True
