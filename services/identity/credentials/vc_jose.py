"""VCDM 2.0 credentials and presentations secured as JWS compact (`vc+jwt`, `vp+jwt`).

Follows W3C "Securing Verifiable Credentials using JOSE and COSE": the credential JSON is the
JWT claims set, `typ` is `vc+jwt`/`vp+jwt`, `cty` is `vc`/`vp`, `iss` mirrors `issuer`/`holder`,
`kid` names the verification method. Keys are jwcrypto JWKs (or JWK dicts): ES256/384/512, EdDSA.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chain.json_types import JsonObject
from services.identity.credentials import vcdm
from services.identity.credentials.jose import (
    Compact,
    KeyLike,
    header_kid,
    parse_json_object,
    sign_compact,
    to_jwk,
    verify_compact,
)
from services.identity.credentials.vcdm import EnvelopedCredential, envelope
from services.identity.errors import AudienceMismatch, NonceMismatch, TokenExpired

CREDENTIAL_TYP = "vc+jwt"
PRESENTATION_TYP = "vp+jwt"
MEDIA_TYPE_CREDENTIAL = "application/vc+jwt"
MEDIA_TYPE_PRESENTATION = "application/vp+jwt"
DEFAULT_LEEWAY_S = 60.0

__all__ = [
    "CREDENTIAL_TYP",
    "PRESENTATION_TYP",
    "EnvelopedCredential",
    "VerifiedCredential",
    "VerifiedPresentation",
    "envelope",
    "issue_credential",
    "issue_presentation",
    "verify_credential",
    "verify_presentation",
]


@dataclass(frozen=True)
class VerifiedCredential:
    """A credential whose signature and data model checks passed."""

    header: JsonObject
    claims: JsonObject
    kid: str | None

    @property
    def document(self) -> JsonObject:
        """The VCDM document without the JWT claims the securing format added."""
        return {k: v for k, v in self.claims.items() if k not in vcdm.SECURING_CLAIMS}


@dataclass(frozen=True)
class VerifiedPresentation:
    """A presentation whose signature, challenge and enveloped credentials' shapes passed."""

    header: JsonObject
    claims: JsonObject
    kid: str | None
    credentials: tuple[EnvelopedCredential, ...]
    replay_key: str  # sha-256 of the signing input: same presentation, same key, any signature

    @property
    def nonce(self) -> str | None:
        """The verifier challenge the holder signed."""
        nonce = self.claims.get("nonce")
        return nonce if isinstance(nonce, str) else None


def _kid_for(key: KeyLike, kid: str | None) -> str | None:
    return kid if kid is not None else to_jwk(key).get("kid")


def _header(typ: str, cty: str, kid: str | None) -> JsonObject:
    header: JsonObject = {"typ": typ, "cty": cty}
    if kid is not None:
        header["kid"] = kid
    return header


def issue_credential(
    credential: Mapping[str, Any],
    key: KeyLike,
    *,
    kid: str | None = None,
    issued_at: int | None = None,
    strict: bool = True,
) -> str:
    """Sign a credential as `vc+jwt`; `kid` should be the verification method's URL."""
    claims = vcdm.credential_claims(credential, issued_at=issued_at, strict=strict)
    return sign_compact(claims, key, _header(CREDENTIAL_TYP, "vc", _kid_for(key, kid)))


def verify_credential(
    token: str, key: KeyLike, *, now: float | None = None, leeway_s: float = DEFAULT_LEEWAY_S
) -> VerifiedCredential:
    """Verify a `vc+jwt`: media type, signature, data model, `iss`/`kid`, and time if `now`."""
    return check_signed_credential(verify_compact(token, key), now=now, leeway_s=leeway_s)


def check_signed_credential(
    compact: Compact, *, now: float | None = None, leeway_s: float = DEFAULT_LEEWAY_S
) -> VerifiedCredential:
    """The checks of verify_credential after the signature: for a caller that verified it."""
    vcdm.check_media_type(compact.header, CREDENTIAL_TYP, "vc")
    claims = parse_json_object(compact.payload, "JWT claims set")
    vcdm.check_jose_document(
        compact.header, claims, check=vcdm.check_credential, iss_member="issuer"
    )
    vcdm.check_time(claims, now, leeway_s)
    return VerifiedCredential(header=compact.header, claims=claims, kid=header_kid(compact.header))


def issue_presentation(
    presentation: Mapping[str, Any],
    key: KeyLike,
    *,
    kid: str | None = None,
    nonce: str | None = None,
    audience: str | None = None,
    issued_at: int | None = None,
    ttl_s: int = 300,
    strict: bool = True,
) -> str:
    """Sign a presentation as `vp+jwt`, bound to the verifier's nonce and audience."""
    claims = vcdm.presentation_claims(
        presentation, issued_at=issued_at, ttl_s=ttl_s, strict=strict, with_jti=True
    )
    if nonce is not None:
        claims["nonce"] = nonce
    if audience is not None:
        claims["aud"] = audience
    resolved_kid = _kid_for(key, kid)
    vcdm.check_kid({"kid": resolved_kid}, claims)
    return sign_compact(claims, key, _header(PRESENTATION_TYP, "vp", resolved_kid))


def verify_presentation(
    token: str,
    key: KeyLike,
    *,
    nonce: str | None = None,
    audience: str | None = None,
    now: float | None = None,
    max_age_s: float | None = None,
    leeway_s: float = DEFAULT_LEEWAY_S,
) -> VerifiedPresentation:
    """Verify a `vp+jwt` and its challenge; enveloped credentials are checked for shape only.

    Each returned credential must then be verified with its own issuer's key (verify_credential
    or sd_jwt.verify_sd_credential); the caller refuses a replay by remembering `replay_key`.
    """
    compact = verify_compact(token, key)
    vcdm.check_media_type(compact.header, PRESENTATION_TYP, "vp")
    claims = parse_json_object(compact.payload, "JWT claims set")
    vcdm.check_jose_document(
        compact.header, claims, check=vcdm.check_presentation, iss_member="holder"
    )
    check_challenge(claims, nonce=nonce, audience=audience)
    vcdm.check_time(claims, now, leeway_s)
    check_age(claims, now=now, max_age_s=max_age_s)
    entries = claims.get("verifiableCredential", [])
    credentials = tuple(
        vcdm.open_envelope(e) for e in (entries if isinstance(entries, list) else [entries])
    )
    signing_input = compact.token.rsplit(".", 1)[0].encode("ascii")
    return VerifiedPresentation(
        header=compact.header,
        claims=claims,
        kid=header_kid(compact.header),
        credentials=credentials,
        replay_key=hashlib.sha256(signing_input).hexdigest(),
    )


def check_challenge(claims: Mapping[str, Any], *, nonce: str | None, audience: str | None) -> None:
    """Verify the signed `nonce` and `aud` are the ones this verifier asked for."""
    if nonce is not None and claims.get("nonce") != nonce:
        raise NonceMismatch("the presentation was made for another nonce")
    if audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if audience not in audiences:
            raise AudienceMismatch(f"the presentation is not addressed to {audience}")


def check_age(claims: Mapping[str, Any], *, now: float | None, max_age_s: float | None) -> None:
    """Verify a numeric `iat` is no older than `max_age_s` (a stale presentation is refused)."""
    if now is None or max_age_s is None:
        return
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or now - iat > max_age_s:
        raise TokenExpired("the presentation is older than the verifier accepts")
