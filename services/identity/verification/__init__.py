"""Verification: credentials, presentations and zero-knowledge predicates, each check reported.

A credential is checked against the chain alone: the issuer's key is the verification method its
`kid` names in the issuer's on-chain DID document (valid at the anchor's height), the issuer's
authorisation for the type is governance's record, the anchor and status bits are state keys.
Each check comes with the state proof it relied on, verifiable offline with chain.light.

    report         the Report of each check's outcome, and the holder Binding a check needs
    credentials    verify one credential: signature, validity period, holder binding
    chain_checks   its checks against the chain's state: issuer key, anchor, authorisation,
                   status bits, schema (each records the state key it read)
    challenges     a verifier's nonces: created, read before a presentation, used once
    presentations  an SD-JWT+KB or a vp+jwt presented for a challenge
    predicates     zero-knowledge predicates (age at least, residency) for a challenge
"""

from __future__ import annotations

from services.identity.verification.chain_checks import STATUS_URL as STATUS_URL
from services.identity.verification.challenges import check_bound_to as check_bound_to
from services.identity.verification.challenges import consume_challenge as consume_challenge
from services.identity.verification.challenges import create_challenge as create_challenge
from services.identity.verification.challenges import open_challenge as open_challenge
from services.identity.verification.credentials import verify_credential as verify_credential
from services.identity.verification.credentials import (
    verify_credential_async as verify_credential_async,
)
from services.identity.verification.predicates import verify_zk as verify_zk
from services.identity.verification.presentations import (
    PRESENTATION_MAX_AGE_S as PRESENTATION_MAX_AGE_S,
)
from services.identity.verification.presentations import (
    verify_presentation as verify_presentation,
)
from services.identity.verification.report import CHECKS as CHECKS
from services.identity.verification.report import REQUIRED as REQUIRED
from services.identity.verification.report import Binding as Binding
from services.identity.verification.report import Report as Report
