"""The identity package's one exception root and its branches.

IdentityError                       every identity failure; `code` is stable for API clients
│                                   (a services.common ServiceError: HTTP 422 unless it says)
├── InvalidKey                      a JWK or verification method is unusable
├── CredentialError                 a VC-JOSE credential/presentation is malformed or fails
│   ├── MalformedToken              not a JWS compact / SD-JWT / data URL we can parse
│   ├── InvalidSignature            the signature does not verify with the given key
│   ├── UnsupportedAlgorithm        `alg` is not one we accept, or does not fit the key
│   ├── InvalidMediaType            `typ`/`cty` is not the one the format requires
│   ├── InvalidClaims               the claims set breaks the data model (vc/vp claims, types)
│   ├── UnknownCredentialProperty   an issuer refuses to sign a member it does not understand
│   ├── IssuerMismatch              `iss` differs from `issuer`/`holder`
│   ├── InvalidKeyId                `kid` missing or not an absolute URL where one is required
│   ├── InvalidEnvelopedCredential  a credential in a presentation is not secured
│   ├── TokenExpired / TokenNotYetValid   time claims or validity period exclude `now`
│   ├── NonceMismatch / AudienceMismatch  a presentation is not for this verifier's challenge
├── DisclosureError                 SD-JWT disclosures do not match the issuer-signed JWT
│   ├── InvalidDisclosure           a disclosure is malformed or cannot be applied
│   ├── DuplicateDigest             a digest appears twice in the payload
│   ├── DuplicateDisclosure         the same disclosure is presented twice
│   ├── UnreferencedDisclosure      a disclosure's digest is not in the payload
│   └── UndisclosableClaim          an issuer asked to hide a claim that must stay visible
├── KeyBindingError                 the holder's key binding JWT is missing or wrong
├── StatusListError                 a Bitstring Status List is malformed or misused
├── VaultError                      a sealed key cannot be opened (services.identity.vault)
├── ProofError                      a zero-knowledge proof does not verify
│   ├── InvalidProof                the proof's equations do not hold or it is malformed
│   ├── StatementMismatch           the proof is for a different statement
│   ├── ProofNonceMismatch          the proof was made for another nonce or context (replay)
│   ├── CommitmentMismatch          the proof is about another commitment than the signed one
│   └── PredicateNotSatisfied       the prover's secret does not satisfy the statement
└── the service's refusals (HTTP status in brackets)
    ├── UnknownDid [404], UnknownType [404], UnknownCredential [404], UnknownChallenge [404]
    ├── NotAuthorisedIssuer [403], NotController [403], NoCustody [503]
    ├── DidDeactivated [410]
    ├── ChallengeUsed [409], IssuerStillAuthorised [409], StatusListsFull [409]
    └── SchemaViolation [422], BadSchema [422], BadRequest [400]

Shared with the other services (services.common.errors, re-exported here): AlreadyExists [409]
(a DID, type or key that exists) and ChainRefused [409] (the chain refused a transaction).
The conformance CLI's CommandError (services.identity.cli) is its `error` result, caught
inside the command and never raised out of it.
"""

from __future__ import annotations

from services.common.errors import AlreadyExists as AlreadyExists  # shared, re-exported
from services.common.errors import ChainRefused as ChainRefused  # shared, re-exported
from services.common.errors import ServiceError


class IdentityError(ServiceError):
    """Root of every error the identity package raises (HTTP 422 unless a branch says)."""

    status = 422
    code = "identity_error"


class InvalidKey(IdentityError):
    """A JWK or verification method is missing, malformed or of the wrong kind."""

    code = "invalid_key"


class CredentialError(IdentityError):
    """A VC-JOSE credential or presentation cannot be issued or does not verify."""

    code = "invalid_credential"


class MalformedToken(CredentialError):
    """The input is not a well-formed JWS compact, SD-JWT or data URL."""

    code = "malformed_token"


class InvalidSignature(CredentialError):
    """The signature does not verify with the verification method's key."""

    code = "invalid_signature"


class UnsupportedAlgorithm(CredentialError):
    """The JWS `alg` is not accepted or does not match the key."""

    code = "unsupported_algorithm"


class InvalidMediaType(CredentialError):
    """The protected header's `typ` or `cty` is not the one this format requires."""

    code = "invalid_media_type"


class InvalidClaims(CredentialError):
    """The claims set is not a valid credential or presentation."""

    code = "invalid_claims"


class UnknownCredentialProperty(CredentialError):
    """The issuer refuses to sign a top-level member the data model does not define."""

    code = "unknown_property"


class IssuerMismatch(CredentialError):
    """The `iss` claim differs from the credential's issuer or the presentation's holder."""

    code = "issuer_mismatch"


class InvalidKeyId(CredentialError):
    """The `kid` header is missing or not an absolute URL where the spec requires one."""

    code = "invalid_kid"


class InvalidEnvelopedCredential(CredentialError):
    """A credential inside a presentation is not an enveloped, secured credential."""

    code = "invalid_enveloped_credential"


class TokenExpired(CredentialError):
    """The token or credential is past its expiry or validity period."""

    code = "expired"


class TokenNotYetValid(CredentialError):
    """The token or credential is not valid yet."""

    code = "not_yet_valid"


class NonceMismatch(CredentialError):
    """The presentation or key binding was made for another nonce."""

    code = "nonce_mismatch"


class AudienceMismatch(CredentialError):
    """The presentation or key binding was made for another audience."""

    code = "audience_mismatch"


class DisclosureError(IdentityError):
    """SD-JWT disclosures do not match the issuer-signed JWT."""

    code = "invalid_disclosure"


class InvalidDisclosure(DisclosureError):
    """A disclosure is malformed or cannot be applied where its digest sits."""

    code = "invalid_disclosure"


class DuplicateDigest(DisclosureError):
    """A digest appears more than once in the issuer-signed payload."""

    code = "duplicate_digest"


class DuplicateDisclosure(DisclosureError):
    """The same disclosure is presented more than once."""

    code = "duplicate_disclosure"


class UnreferencedDisclosure(DisclosureError):
    """A presented disclosure's digest is not referenced by the payload."""

    code = "unreferenced_disclosure"


class UndisclosableClaim(DisclosureError):
    """The issuer was asked to make a claim selectively disclosable that must stay visible."""

    code = "undisclosable_claim"


class KeyBindingError(IdentityError):
    """The key binding JWT is missing, malformed, or does not bind this presentation."""

    code = "invalid_key_binding"


class StatusListError(IdentityError):
    """A Bitstring Status List is malformed, too short, or an index is out of range."""

    code = "invalid_status_list"


class ProofError(IdentityError):
    """A zero-knowledge proof does not verify."""

    code = "invalid_proof"


class InvalidProof(ProofError):
    """The proof is malformed or its verification equations do not hold."""

    code = "invalid_proof"


class StatementMismatch(ProofError):
    """The proof is for another statement than the verifier asked about."""

    code = "statement_mismatch"


class ProofNonceMismatch(ProofError):
    """The proof was made for another nonce or context: a replay."""

    code = "proof_replayed"


class CommitmentMismatch(ProofError):
    """The proof is about another commitment than the one the issuer signed."""

    code = "commitment_mismatch"


class PredicateNotSatisfied(ProofError):
    """The prover's secret does not satisfy the statement, so no proof can be made."""

    code = "predicate_not_satisfied"


# -- the service's refusals -----------------------------------------------------------------------


class UnknownDid(IdentityError):
    """The DID is not a did:smartcity DID registered on the chain."""

    status, code = 404, "unknown_did"


class UnknownType(IdentityError):
    """No credential type of that name is registered."""

    status, code = 404, "unknown_type"


class UnknownCredential(IdentityError):
    """This service issued no credential with that id (for the caller)."""

    status, code = 404, "unknown_credential"


class UnknownChallenge(IdentityError):
    """The nonce was not issued by this service to the caller, or it has expired."""

    status, code = 404, "unknown_challenge"


class DidDeactivated(IdentityError):
    """The DID was deactivated."""

    status, code = 410, "did_deactivated"


class NotAuthorisedIssuer(IdentityError):
    """Governance has not admitted the caller as an issuer of the credential type."""

    status, code = 403, "not_authorised_issuer"


class NotController(IdentityError):
    """The caller's organisation does not control the DID or did not issue the credential."""

    status, code = 403, "not_controller"


class NoCustody(IdentityError):
    """The service holds no chain key for the organisation, so it cannot sign as it."""

    status, code = 503, "no_custody"


class IssuerStillAuthorised(IdentityError):
    """The DID belongs to an organisation governance still lists as an issuer."""

    status, code = 409, "issuer_active"


class ChallengeUsed(IdentityError):
    """The nonce was already used, or the same presentation was already submitted: a replay."""

    status, code = 409, "replayed"


class StatusListsFull(IdentityError):
    """The issuer has used every status list entry the contract accepts."""

    status, code = 409, "status_lists_full"


class SchemaViolation(IdentityError):
    """The claims do not satisfy the credential type's JSON Schema."""

    code = "schema_violation"


class BadSchema(IdentityError):
    """The JSON Schema offered for a credential type is not a valid JSON Schema."""

    code = "bad_schema"


class BadRequest(IdentityError):
    """The request is well-formed JSON but asks for something that cannot be done."""

    status, code = 400, "bad_request"
