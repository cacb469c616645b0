"""Short-lived bearer JWTs signed by a key registered on the chain (EdDSA, RFC 8037).

On an sm2-sm3 chain the keys are SM2 and the JWS `alg` is `SM2SM3`: SM2 (GB/T 32918.2, default
ID, e = SM3(Z || signing input)) over the JWS signing input, the signature 64 bytes r || s as
ES256's is (RFC 7518 3.4). No SM2 algorithm is registered with IANA for JOSE; the name says
both the curve's signature and its hash, as `EdDSA` does not need to, and it is the suite's
`jws_alg` (chain/suites; docs/sm-suite-evaluation.md). A token's alg must be its key's suite's.

A caller signs a token with its organisation's registered key; a service verifies it against the
chain's membership registry. No shared secrets and no password tables.

A token's signature depends on nothing but the token (its `kid` is the public key itself), so a
`VerifiedTokens` cache lets a service check it once; the key's registration on the chain, the
organisation, the lifetime and the audience are checked again on every call.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jwcrypto import jwk, jws

from chain.crypto import SigningKey
from chain.encoding import b64url, from_b64url, parse_json
from chain.errors import ChainError, EncodingError
from chain.json_types import NOT_UNICODE_TEXT, is_unicode_text
from chain.suites import CryptoSuite, SuiteKey, SuiteUnavailable, suite_for

MAX_TTL_S = 3600
DEFAULT_TTL_S = 300
AUDIENCE_CHAIN = "chain"
LEEWAY_S = 30
VERIFIED_TOKENS = 4096  # signatures a service remembers; a token lives an hour at most
# A token this suite mints is ~400 bytes; a larger one is refused before it is parsed, so a
# caller cannot make a service parse (or remember) megabytes of JSON per request
MAX_TOKEN_BYTES = 4096
# What a remembered token keeps: the fields every call checks again, scalars once it passed
KEPT_HEADER = ("alg", "kid")
KEPT_CLAIMS = ("iss", "sub", "aud", "iat", "exp")
# Header parameters that change how a JWS is verified (RFC 7515 §4.1.11, RFC 7797): refused
UNSUPPORTED_HEADERS = ("crit", "b64")
# The JWS algorithms accepted, each its suite and its keys' name
ALGS = {"EdDSA": ("ed25519-sha256", "Ed25519"), "SM2SM3": ("sm2-sm3", "SM2")}

Parts = tuple[dict[str, object], dict[str, object]]


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
    key: SuiteKey,
    *,
    org: str,
    audience: str,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """A compact JWS (EdDSA, or SM2SM3 for an SM2 key) naming the organisation, the key and
    the audience."""
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
    if not isinstance(key, SigningKey):
        return _sm2_token(key, claims)
    token = jws.JWS(json.dumps(claims, separators=(",", ":")).encode())
    token.add_signature(
        jwk.JWK(**key.to_jwk()),
        alg="EdDSA",
        protected=json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": key.public_hex}),
    )
    return str(token.serialize(compact=True))


def _sm2_token(key: SuiteKey, claims: dict[str, object]) -> str:
    """The compact JWS of `claims` signed by an SM2 key (jwcrypto has no SM2)."""
    header = {"alg": "SM2SM3", "typ": "JWT", "kid": key.public_hex}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return f"{signing_input}.{b64url(suite_for('sm2-sm3').sign(key, signing_input.encode()))}"


class VerifiedTokens:
    """Tokens whose signature verified, with their header and claims (oldest dropped first).

    Only a token whose signature verified and which passed every check once is kept, under its
    whole text (signature included), so a forged or altered token is never found here; it keeps
    only the header and claim fields `verify_token` reads (`KEPT_HEADER`, `KEPT_CLAIMS`), so an
    entry is a few hundred bytes whatever else the token carried.
    """

    def __init__(self, capacity: int = VERIFIED_TOKENS) -> None:
        self.capacity = capacity
        self._parts: dict[str, Parts] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Parts | None:
        return self._parts.get(token)

    def add(self, token: str, parts: Parts) -> None:
        header, claims = parts
        parts = (
            {name: header[name] for name in KEPT_HEADER if name in header},
            {name: claims[name] for name in KEPT_CLAIMS if name in claims},
        )
        with self._lock:
            if len(self._parts) >= self.capacity:
                self._parts.pop(next(iter(self._parts)))
            self._parts[token] = parts


def verify_token(
    token: str,
    *,
    audience: str,
    resolve: Callable[[str], tuple[str, frozenset[str]] | None],
    now: float | None = None,
    verified: VerifiedTokens | None = None,
) -> Caller:
    """Check a bearer token's signature, lifetime, audience and on-chain key; return the caller.

    With `verified`, a token whose signature verified before is not verified again; every other
    check runs on every call.
    """
    current = time.time() if now is None else now
    known = verified.get(token) if verified is not None else None
    header, claims = known or _unverified_parts(token)
    kid = header.get("kid")
    # Verify the algorithm and that the token names the key that signed it
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGS:
        raise AuthError("token must be signed with EdDSA (Ed25519) or SM2SM3 (SM2 with SM3)")
    if not isinstance(kid, str) or kid != claims.get("sub"):
        raise AuthError("token kid must equal its sub (the signing key)")
    registered = resolve(kid)
    if registered is None:
        raise AuthError(f"key {kid[:16]}… is not an active key registered on the chain")
    # Verify the signature before trusting any claim
    if known is None:
        try:
            suite = suite_for(ALGS[alg][0])
        except SuiteUnavailable as exc:  # SM2 with no OpenSSL 3 here
            raise AuthError(f"token cannot be verified here: {exc}") from exc
        _verify_signature(token, header, kid, suite)
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
    if known is None and verified is not None:
        # Remembered once it passed every check: a token refused for any reason takes no slot
        verified.add(token, (header, claims))
    return Caller(org=org, key=kid, roles=roles)


def _verify_signature(token: str, header: dict[str, object], kid: str, suite: CryptoSuite) -> None:
    """The compact JWS's signature (its alg's suite) over `header.payload` by the key `kid`."""
    if not suite.is_usable_public_key(kid):
        raise AuthError(f"token kid is not a usable {ALGS[suite.jws_alg][1]} public key")
    if any(name in header for name in UNSUPPORTED_HEADERS):
        raise AuthError(f"token header must not carry {' or '.join(UNSUPPORTED_HEADERS)}")
    signing_input, _, signature = token.rpartition(".")
    try:
        raw = from_b64url(signature, field="signature")
    except EncodingError as exc:
        raise AuthError("token signature does not verify") from exc
    if not suite.verify(kid, signing_input.encode("ascii"), raw):
        raise AuthError("token signature does not verify")


def _unverified_parts(token: str) -> Parts:
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthError(
            f"bearer token is {len(token)} bytes, over the {MAX_TOKEN_BYTES}-byte limit"
        )
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii():
        raise AuthError("bearer token is not a compact JWS (header.payload.signature)")
    try:
        raw_header = from_b64url(parts[0], field="header")
        raw_claims = from_b64url(parts[1], field="payload")
        header, claims = parse_json(raw_header), parse_json(raw_claims)
    except (EncodingError, ValueError) as exc:
        raise AuthError(f"bearer token is malformed: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("bearer token header and payload must be JSON objects")
    # Verify every string is Unicode text: JSON's "\ud800" escape reads into a string no UTF-8
    # encoder takes, and a refusal quoting it (its kid) could not be written out (a 500)
    if not _unicode_text(raw_header, header) or not _unicode_text(raw_claims, claims):
        raise AuthError(f"bearer token is malformed: its header or payload {NOT_UNICODE_TEXT}")
    return header, claims


def _unicode_text(raw: bytes, value: dict[str, object]) -> bool:
    """Whether every string in `value`, parsed from the JSON `raw`, is Unicode text (only a
    \\u escape can write one that is not, so a token without one is not walked)."""
    return b"\\u" not in raw or is_unicode_text(value)
