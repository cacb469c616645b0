"""The identity domain, one module per feature: DIDs, issuer keys, credential types,
issuance, status (revocation and suspension) and listing.

Keyword-only functions, as credit's: each takes the service runtime (`rt`) and, where it needs
one, the request's DB session, and raises the package's errors (one-value helpers such as
`iso(moment)` keep their one argument positional). Chain writes come first (signed as the
acting org, see chain.py), DB rows after, in the request's one transaction: a refusal anywhere
leaves nothing half-written.
Verification lives in `verification/`.

    common            hashes and times every feature writes the same way
    dids              did:smartcity DIDs: create, update keys, deactivate, resolve
    issuer_keys       an issuer's signing keys (sealed in the vault) and their DID
    credential_types  registered types: their JSON Schema here, its hash on the chain
    issuance          issue credentials (vc+jwt, SD-JWT, vc+cose), anchored on the chain
    entries           status list entries: a per-issuer counter, secretly permuted indexes
    status            suspend, reinstate and revoke; the Bitstring Status List credential
    listing           an issuer's credentials, filtered and paged
"""

from __future__ import annotations

from services.identity.service.common import digest_sri as digest_sri
from services.identity.service.common import iso as iso
from services.identity.service.common import schema_hash as schema_hash
from services.identity.service.common import token_hash as token_hash
from services.identity.service.credential_types import get_type as get_type
from services.identity.service.credential_types import register_type as register_type
from services.identity.service.credential_types import schema_problems as schema_problems
from services.identity.service.credential_types import type_record as type_record
from services.identity.service.credential_types import validator_for as validator_for
from services.identity.service.dids import DID_CONTEXT as DID_CONTEXT
from services.identity.service.dids import DID_CURVES as DID_CURVES
from services.identity.service.dids import JWK_CONTEXT as JWK_CONTEXT
from services.identity.service.dids import active_did as active_did
from services.identity.service.dids import create_holder_did as create_holder_did
from services.identity.service.dids import deactivate_did as deactivate_did
from services.identity.service.dids import did_document as did_document
from services.identity.service.dids import did_record as did_record
from services.identity.service.dids import issuer_record as issuer_record
from services.identity.service.dids import parse_did as parse_did
from services.identity.service.dids import public_key_args as public_key_args
from services.identity.service.dids import require_active_issuer as require_active_issuer
from services.identity.service.dids import update_did_keys as update_did_keys
from services.identity.service.issuance import COMMITMENTS as COMMITMENTS
from services.identity.service.issuance import Prepared as Prepared
from services.identity.service.issuance import issue as issue
from services.identity.service.issuance import status_entries as status_entries
from services.identity.service.issuance import status_list_url as status_list_url
from services.identity.service.issuer_keys import ALG_CURVES as ALG_CURVES
from services.identity.service.issuer_keys import setup_issuer_keys as setup_issuer_keys
from services.identity.service.issuer_keys import signing_key as signing_key
from services.identity.service.listing import CREDENTIAL_STATUSES as CREDENTIAL_STATUSES
from services.identity.service.listing import ListedCredential as ListedCredential
from services.identity.service.listing import credential_status as credential_status
from services.identity.service.listing import list_credentials as list_credentials
from services.identity.service.status import change_status as change_status
from services.identity.service.status import credential_claims as credential_claims
from services.identity.service.status import own_credential as own_credential
from services.identity.service.status import status_list_document as status_list_document
