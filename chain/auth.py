"""Short-lived bearer JWTs signed by a key registered on the chain (EdDSA, RFC 8037).

A caller signs a token with its organisation's registered key; a service verifies it against the
chain's membership registry. No shared secrets and no password tables.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from chain.crypto import SigningKey, is_usable_public_key
from chain.encoding import b64url, from_b64url, parse_json
from chain.errors import ChainError, EncodingError

MAX_TTL_S = 3600
DEFAULT_TTL_S = 300
AUDIENCE_CHAIN = "chain"
LEEWAY_S = 30


class AuthError(ChainError):
    """A token is missing, malformed, expired, forged, for another service, or lacks a role."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Caller:
    org: str
    key: str
    roles: frozenset[str]

    def require(self, *roles: str) -> None:
        """Refuse (403) a caller whose organisation holds none of `roles`."""
        if not self.roles.intersection(roles):
            raise AuthError(
                f"organisation {self.org} lacks role {' or '.join(roles)}"
                f" (it has {sorted(self.roles) or 'none'})",
                status=403,
            )


def mint_token(
    key: SigningKey,
    *,
    org: str,
    audience: str,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A compact JWS (EdDSA) naming the organisation, the key and the audience."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise AuthError(f"token lifetime must be 1..{MAX_TTL_S} seconds")
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": org,
        "sub": key.public_hex,
        "aud": audience,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_hex(8),
    }
    token = jws.JWS(json.dumps(claims, separators=(",", ":")).encode())
    token.add_signature(
        jwk.JWK(**key.to_jwk()),
        alg="EdDSA",
        protected=json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": key.public_hex}),
    )
    return str(token.serialize(compact=True))


def verify_token(
    token: str,
    *,
    audience: str,
    resolve: Callable[[str], tuple[str, frozenset[str]] | None],
    now: float | None = None,
) -> Caller:
    """Check a bearer token's signature, lifetime, audience and on-chain key; return the caller."""
    current = time.time() if now is None else now
    header, claims = _unverified_parts(token)
    kid = header.get("kid")
    # Verify the algorithm and that the token names the key that signed it
    if header.get("alg") != "EdDSA":
        raise AuthError("token must be signed with EdDSA (Ed25519)")
    if not isinstance(kid, str) or kid != claims.get("sub"):
        raise AuthError("token kid must equal its sub (the signing key)")
    registered = resolve(kid)
    if registered is None:
        raise AuthError(f"key {kid[:16]}… is not an active key registered on the chain")
    # Verify the signature before trusting any claim
    if not is_usable_public_key(kid):
        raise AuthError("token kid is not a usable Ed25519 public key")
    try:
        public = jwk.JWK(kty="OKP", crv="Ed25519", x=b64url(bytes.fromhex(kid)))
        verifier = jws.JWS()
        verifier.deserialize(token)
        verifier.verify(public, alg="EdDSA")
    except (JWException, ValueError) as exc:
        raise AuthError("token signature does not verify") from exc
    org, roles = registered
    if claims.get("iss") != org:
        raise AuthError(
            f"token claims organisation {claims.get('iss')!r} but its key belongs to {org}"
        )
    # Verify the lifetime and the audience
    exp, iat = claims.get("exp"), claims.get("iat")
    if type(exp) is not int or type(iat) is not int or exp <= iat:
        raise AuthError("token must carry integer iat and exp with exp after iat")
    if exp - iat > MAX_TTL_S:
        raise AuthError(f"token lifetime {exp - iat}s exceeds {MAX_TTL_S}s")
    if current > exp + LEEWAY_S:
        raise AuthError(f"token expired {int(current - exp)}s ago: mint a new one")
    if iat > current + LEEWAY_S:
        raise AuthError("token is issued in the future: check the clock")
    if claims.get("aud") != audience:
        raise AuthError(
            f"token is for audience {claims.get('aud')!r}, this is {audience!r}", status=401
        )
    return Caller(org=org, key=kid, roles=roles)


def _unverified_parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("bearer token is not a compact JWS (header.payload.signature)")
    try:
        header = parse_json(from_b64url(parts[0], field="header"))
        claims = parse_json(from_b64url(parts[1], field="payload"))
    except (EncodingError, ValueError) as exc:
        raise AuthError(f"bearer token is malformed: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("bearer token header and payload must be JSON objects")
    return header, claims
