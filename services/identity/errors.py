"""The identity package's one exception root and its branches.

IdentityError                       every identity failure; `code` is stable for API clients
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
└── ProofError                      a zero-knowledge proof does not verify
    ├── InvalidProof                the proof's equations do not hold or it is malformed
    ├── StatementMismatch           the proof is for a different statement
    ├── ProofNonceMismatch          the proof was made for another nonce or context (replay)
    ├── CommitmentMismatch          the proof is about another commitment than the signed one
    └── PredicateNotSatisfied       the prover's secret does not satisfy the statement
"""

from __future__ import annotations


class IdentityError(Exception):
    """Root of every error the identity package raises."""

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
