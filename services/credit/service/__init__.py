"""The credit domain, one module per feature: SMEs, uploads, ratings, the bank's read,
consents, inquiries and model versions.

Keyword-only functions; each takes the request's session (one transaction per request) and the
authenticated caller, writes the chain first, then mirrors into the service database so a retry
completes rather than duplicates. They raise the package's errors, never HTTPException.

    common         the clock
    registry       SME registration and lookup, the SME a caller may act on
    uploads        financial statement uploads (read from the request body) and their features
    history        an SME's statement history: period order, continuity, features by period
    vectors        features stored as packed float64 vectors for batch reads
    ratings        scoring SMEs, one or in batches, their history
    batch_ratings  ratings anchored by one Merkle root, their audit paths and records
    bank_reads     a bank's consented, audited read of a rating
    consents       consents the SMEs sign on the chain
    inquiries      who read which rating, as the SME, the bank and the regulator see it
    governance     model versions on the chain, committee votes, chain parameters

The pure scoring code they call is `services.credit.scoring`; the runtime's model versions are
`services.credit.model_store`.
"""

from __future__ import annotations

from services.credit.service.bank_reads import bank_read_rating as bank_read_rating
from services.credit.service.common import now_ms as now_ms
from services.credit.service.consents import list_consents as list_consents
from services.credit.service.consents import submit_consent as submit_consent
from services.credit.service.governance import chain_params as chain_params
from services.credit.service.governance import ensure_models_registered as ensure_models_registered
from services.credit.service.governance import get_model as get_model
from services.credit.service.governance import list_models as list_models
from services.credit.service.governance import submit_governance as submit_governance
from services.credit.service.inquiries import all_inquiries as all_inquiries
from services.credit.service.inquiries import bank_inquiries as bank_inquiries
from services.credit.service.inquiries import sme_inquiries as sme_inquiries
from services.credit.service.ratings import RATINGS_PER_TX as RATINGS_PER_TX
from services.credit.service.ratings import active_model as active_model
from services.credit.service.ratings import own_rating as own_rating
from services.credit.service.ratings import rate_sme as rate_sme
from services.credit.service.ratings import rate_smes as rate_smes
from services.credit.service.ratings import rating_history as rating_history
from services.credit.service.registry import SMES_PER_TX as SMES_PER_TX
from services.credit.service.registry import get_sme as get_sme
from services.credit.service.registry import list_smes as list_smes
from services.credit.service.registry import register_sme as register_sme
from services.credit.service.registry import register_smes as register_smes
from services.credit.service.uploads import list_statements as list_statements
from services.credit.service.uploads import upload_statements as upload_statements
