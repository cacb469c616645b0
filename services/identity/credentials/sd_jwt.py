"""Selective disclosure JWTs (IETF RFC 9901) and their credential profiles.

Core: issue an SD-JWT (`<jwt>~<disclosure>~...~`), let the holder pick disclosures and add a key
binding JWT (`kb+jwt`, with `sd_hash`, `nonce`, `aud`, `iat`), verify all of it. Profiles:
W3C VCDM 2.0 secured with SD-JWT (`vc+sd-jwt` / `vp+sd-jwt`, cty `vc`/`vp`) and IETF SD-JWT VC
(`dc+sd-jwt`, with `vct`). Only sha-256 digests are produced and accepted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from chain.json_types import JsonObject
from services.identity.credentials import vcdm
from services.identity.credentials.disclosures import (
    SD_ALG,
    Disclosure,
    PathPart,
    apply_disclosures,
    decode_disclosure,
    format_path,
    make_disclosable,
    parse_path,
)
from services.identity.credentials.jose import (
    Compact,
    KeyLike,
    b64url_encode,
    parse_compact,
    parse_json_object,
    public_jwk,
    sign_compact,
    to_jwk,
    verify_compact,
)
from services.identity.credentials.vc_jose import check_challenge
from services.identity.errors import (
    IdentityError,
    InvalidClaims,
    InvalidMediaType,
    KeyBindingError,
    MalformedToken,
)

SD_JWT_VC_TYP = "dc+sd-jwt"
VC_SD_JWT_TYP = "vc+sd-jwt"
VP_SD_JWT_TYP = "vp+sd-jwt"
KB_JWT_TYP = "kb+jwt"
# Claims that must stay visible: securing claims, and what a verifier needs to read the rest.
ALWAYS_VISIBLE = frozenset({"iss", "iat", "nbf", "exp", "cnf", "vct", "status", "@context", "type"})

__all__ = [
    "Disclosure",
    "SdJwt",
    "VerifiedSdJwt",
    "disclosable_paths",
    "issue_sd_credential",
    "issue_sd_jwt",
    "issue_sd_jwt_vc",
    "issue_sd_presentation",
    "parse_sd_jwt",
    "present",
    "verify_sd_credential",
    "verify_sd_jwt",
    "verify_sd_jwt_vc",
    "verify_sd_presentation",
]


@dataclass(frozen=True)
class SdJwt:
    """An SD-JWT split into its issuer-signed JWT, disclosures and optional key binding JWT."""

    issuer_jwt: str
    disclosures: tuple[Disclosure, ...]
    key_binding_jwt: str | None

    def serialize(self) -> str:
        """The compact `~`-separated form."""
        return self.without_key_binding() + (self.key_binding_jwt or "")

    def without_key_binding(self) -> str:
        """The part a key binding JWT's `sd_hash` covers (ends with `~`)."""
        return "~".join([self.issuer_jwt, *(d.encoded for d in self.disclosures)]) + "~"


@dataclass(frozen=True)
class VerifiedSdJwt:
    """A verified SD-JWT: the rebuilt claims and which claims the holder disclosed."""

    header: JsonObject
    claims: JsonObject
    disclosed: tuple[str, ...]
    key_bound: bool

    @property
    def document(self) -> JsonObject:
        """The VCDM document without the claims the securing format added."""
        return {k: v for k, v in self.claims.items() if k not in vcdm.SECURING_CLAIMS}


def parse_sd_jwt(text: str) -> SdJwt:
    """Split an SD-JWT compact serialization; malformed disclosures are rejected here."""
    parts = text.strip().split("~")
    if len(parts) < 2 or not parts[0]:
        raise MalformedToken("an SD-JWT is <jwt>~<disclosures>~[<kb-jwt>]")
    if any(not p for p in parts[1:-1]):
        raise MalformedToken("an SD-JWT has an empty disclosure")
    parse_compact(parts[0])
    kb = parts[-1] or None
    if kb is not None:
        parse_compact(kb)
    return SdJwt(parts[0], tuple(decode_disclosure(p) for p in parts[1:-1]), kb)


def issue_sd_jwt(
    claims: Mapping[str, Any],
    key: KeyLike,
    *,
    disclose: Iterable[str],
    typ: str = SD_JWT_VC_TYP,
    cty: str | None = None,
    kid: str | None = None,
    holder_key: KeyLike | None = None,
    decoys: int = 0,
    reserved: frozenset[str] = ALWAYS_VISIBLE,
) -> str:
    """Sign `claims` with each claim at a `disclose` path (e.g. `a.b[0]`) made disclosable.

    `holder_key` puts the holder's public JWK in `cnf` so presentations need key binding.
    """
    payload, disclosures = make_disclosable(claims, disclose, reserved=reserved, decoys=decoys)
    payload["_sd_alg"] = SD_ALG
    if holder_key is not None:
        payload["cnf"] = {"jwk": public_jwk(to_jwk(holder_key))}
    header: JsonObject = {"typ": typ}
    if cty is not None:
        header["cty"] = cty
    kid = kid if kid is not None else to_jwk(key).get("kid")
    if kid is not None:
        header["kid"] = kid
    issuer_jwt = sign_compact(payload, key, header)
    return SdJwt(issuer_jwt, tuple(disclosures), None).serialize()


def disclosable_paths(sd_jwt: str) -> dict[str, Disclosure]:
    """Map each path the holder may disclose (e.g. `credentialSubject.age`) to its disclosure."""
    parsed = parse_sd_jwt(sd_jwt)
    payload = parse_json_object(parse_compact(parsed.issuer_jwt).payload, "SD-JWT payload")
    _, used = apply_disclosures(payload, parsed.disclosures)
    by_digest = {d.digest: d for d in parsed.disclosures}
    return {format_path(path): by_digest[digest] for digest, path in used.items()}


def present(
    sd_jwt: str,
    *,
    disclose: Iterable[str] | Callable[[str], bool],
    holder_key: KeyLike | None = None,
    nonce: str | None = None,
    audience: str | None = None,
    issued_at: int | None = None,
) -> str:
    """Holder side: keep only the chosen disclosures (and their parents), then key-bind if asked.

    `disclose` is a set of claim paths or a predicate on paths. With `holder_key`, a `kb+jwt`
    over the presented SD-JWT binds it to `nonce` and `audience`.
    """
    paths = disclosable_paths(sd_jwt)
    wanted = disclose if callable(disclose) else set(disclose).__contains__
    chosen = {p for p in paths if wanted(p)}
    keep = {p for p in paths if any(_is_prefix(parse_path(p), parse_path(c)) for c in chosen)}
    parsed = parse_sd_jwt(sd_jwt)
    kept = tuple(d for d in parsed.disclosures if d.encoded in {paths[p].encoded for p in keep})
    presentation = SdJwt(parsed.issuer_jwt, kept, None)
    if holder_key is None:
        return presentation.serialize()
    kb_claims: JsonObject = {
        "iat": int(time.time()) if issued_at is None else issued_at,
        "sd_hash": _sd_hash(presentation.without_key_binding()),
    }
    if nonce is not None:
        kb_claims["nonce"] = nonce
    if audience is not None:
        kb_claims["aud"] = audience
    kb_jwt = sign_compact(kb_claims, holder_key, {"typ": KB_JWT_TYP})
    return presentation.serialize() + kb_jwt


def _is_prefix(prefix: list[PathPart], path: list[PathPart]) -> bool:
    return path[: len(prefix)] == prefix


def _sd_hash(text: str) -> str:
    return b64url_encode(hashlib.sha256(text.encode("ascii")).digest())


def verify_sd_jwt(
    text: str,
    key: KeyLike,
    *,
    typ: str | frozenset[str] = SD_JWT_VC_TYP,
    require_key_binding: bool = False,
    nonce: str | None = None,
    audience: str | None = None,
    now: float | None = None,
    kb_max_age_s: float = 300.0,
    leeway_s: float = 60.0,
    verified: Compact | None = None,
) -> VerifiedSdJwt:
    """Verify issuer signature, `typ`, digests (each disclosure used once) and key binding."""
    parsed = parse_sd_jwt(text)
    # A caller that already verified the issuer-signed JWT with this key passes it (verified)
    compact = verified if verified is not None else verify_compact(parsed.issuer_jwt, key)
    if compact.token != parsed.issuer_jwt:
        raise MalformedToken("the verified issuer JWT is not this SD-JWT's")
    typs = {typ} if isinstance(typ, str) else set(typ)
    if vcdm.strip_application(compact.header.get("typ")) not in typs:
        raise InvalidMediaType(
            f"typ must be one of {sorted(typs)}, got {compact.header.get('typ')!r}"
        )
    payload = parse_json_object(compact.payload, "SD-JWT payload")
    claims, used = apply_disclosures(payload, parsed.disclosures)
    key_bound = _check_key_binding(
        text,
        parsed,
        claims,
        require=require_key_binding,
        now=now,
        max_age_s=kb_max_age_s,
        leeway_s=leeway_s,
    )
    if parsed.key_binding_jwt is None:
        # Without key binding nothing signed the challenge: refuse if the verifier set one.
        if nonce is not None or audience is not None:
            raise KeyBindingError("a nonce or audience was required but no key binding JWT")
    else:
        kb = parse_json_object(parse_compact(parsed.key_binding_jwt).payload, "KB-JWT")
        check_challenge(kb, nonce=nonce, audience=audience)
    vcdm.check_time(claims, now, leeway_s)
    disclosed = tuple(sorted(format_path(p) for p in used.values()))
    return VerifiedSdJwt(compact.header, claims, disclosed, key_bound)


def _check_key_binding(
    text: str,
    parsed: SdJwt,
    claims: Mapping[str, Any],
    *,
    require: bool,
    now: float | None,
    max_age_s: float,
    leeway_s: float,
) -> bool:
    if parsed.key_binding_jwt is None:
        if require:
            raise KeyBindingError("a key binding JWT is required")
        return False
    cnf = claims.get("cnf")
    if not isinstance(cnf, Mapping) or not isinstance(cnf.get("jwk"), Mapping):
        raise KeyBindingError("a key binding JWT needs a cnf.jwk in the credential")
    try:
        kb = verify_compact(parsed.key_binding_jwt, cnf["jwk"])
    except IdentityError as exc:
        raise KeyBindingError(f"the key binding JWT does not verify: {exc}") from exc
    if vcdm.strip_application(kb.header.get("typ")) != KB_JWT_TYP:
        raise KeyBindingError("the key binding JWT's typ must be kb+jwt")
    kb_claims = parse_json_object(kb.payload, "KB-JWT")
    _check_kb_time(kb_claims, now=now, leeway_s=leeway_s)
    # Verify sd_hash covers exactly the SD-JWT and disclosures presented with it
    if kb_claims.get("sd_hash") != _sd_hash(text.strip()[: text.strip().rfind("~") + 1]):
        raise KeyBindingError("sd_hash does not match the presented SD-JWT")
    iat = kb_claims.get("iat")
    if not isinstance(iat, int | float):
        raise KeyBindingError("the key binding JWT needs a numeric iat")
    if now is not None and not (now - max_age_s - leeway_s <= iat <= now + leeway_s):
        raise KeyBindingError("the key binding JWT is stale or from the future")
    return True


def _check_kb_time(kb_claims: Mapping[str, Any], *, now: float | None, leeway_s: float) -> None:
    """RFC 7519 `exp`/`nbf` on the key binding JWT too (RFC 9901 §7.3, step 5)."""
    try:
        vcdm.check_jwt_claims(kb_claims)
        vcdm.check_time(kb_claims, now, leeway_s)
    except IdentityError as exc:
        raise KeyBindingError(f"the key binding JWT is not valid now: {exc}") from exc


# -- W3C VCDM 2.0 secured with SD-JWT -------------------------------------------------------------


class IssueOptions(TypedDict, total=False):
    """What an issuer of a credential profile may set beside its claims (as for issue_sd_jwt)."""

    kid: str | None
    holder_key: KeyLike | None
    decoys: int


def issue_sd_credential(
    credential: Mapping[str, Any],
    key: KeyLike,
    *,
    disclose: Iterable[str],
    issued_at: int | None = None,
    strict: bool = True,
    **options: Unpack[IssueOptions],
) -> str:
    """Issue a VCDM 2.0 credential as `vc+sd-jwt` with the claims at `disclose` paths hidden."""
    claims = vcdm.credential_claims(credential, issued_at=issued_at, strict=strict)
    return issue_sd_jwt(claims, key, disclose=disclose, typ=VC_SD_JWT_TYP, cty="vc", **options)


def verify_sd_credential(text: str, key: KeyLike, **options: Any) -> VerifiedSdJwt:
    """Verify a `vc+sd-jwt`; options as for verify_sd_jwt (nonce, audience, now, ...)."""
    return _verify_vcdm(text, key, VC_SD_JWT_TYP, "vc", vcdm.check_credential, "issuer", options)


def issue_sd_presentation(
    presentation: Mapping[str, Any],
    key: KeyLike,
    *,
    disclose: Iterable[str],
    kid: str | None = None,
    issued_at: int | None = None,
    ttl_s: int = 300,
    strict: bool = True,
) -> str:
    """Sign a VCDM 2.0 presentation as `vp+sd-jwt` (its enveloped credentials may be hidden)."""
    claims = vcdm.presentation_claims(presentation, issued_at=issued_at, ttl_s=ttl_s, strict=strict)
    return issue_sd_jwt(claims, key, disclose=disclose, typ=VP_SD_JWT_TYP, cty="vp", kid=kid)


def verify_sd_presentation(
    text: str, key: KeyLike, **options: Any
) -> tuple[VerifiedSdJwt, tuple[vcdm.EnvelopedCredential, ...]]:
    """Verify a `vp+sd-jwt` and check each disclosed credential in it is enveloped and secured."""
    verified = _verify_vcdm(
        text, key, VP_SD_JWT_TYP, "vp", vcdm.check_presentation, "holder", options
    )
    entries = verified.claims.get("verifiableCredential", [])
    items = entries if isinstance(entries, list) else [entries]
    return verified, tuple(vcdm.open_envelope(e) for e in items)


def _verify_vcdm(
    text: str,
    key: KeyLike,
    typ: str,
    cty: str,
    check: vcdm.DocumentCheck,
    iss_member: str,
    options: dict[str, Any],
) -> VerifiedSdJwt:
    """An SD-JWT secured VCDM 2.0 document: its media types, then `check` and its iss and kid."""
    verified = verify_sd_jwt(text, key, typ=typ, **options)
    _check_cty(verified.header, cty)
    vcdm.check_jose_document(verified.header, verified.claims, check=check, iss_member=iss_member)
    return verified


def _check_cty(header: Mapping[str, Any], cty: str) -> None:
    if "cty" in header and vcdm.strip_application(header["cty"]) != cty:
        raise InvalidMediaType(f"cty must be {cty}, got {header['cty']!r}")


# -- IETF SD-JWT VC ---------------------------------------------------------------------------


def issue_sd_jwt_vc(
    claims: Mapping[str, Any],
    key: KeyLike,
    *,
    disclose: Iterable[str],
    issued_at: int | None = None,
    **options: Unpack[IssueOptions],
) -> str:
    """Issue an SD-JWT VC (`dc+sd-jwt`); `claims` need `iss` and `vct`."""
    _check_sd_jwt_vc_claims(claims)
    body = {**claims, "iat": int(time.time()) if issued_at is None else issued_at}
    return issue_sd_jwt(body, key, disclose=disclose, typ=SD_JWT_VC_TYP, **options)


def verify_sd_jwt_vc(text: str, key: KeyLike, **options: Any) -> VerifiedSdJwt:
    """Verify an SD-JWT VC (`dc+sd-jwt`); options as for verify_sd_jwt."""
    verified = verify_sd_jwt(text, key, typ=SD_JWT_VC_TYP, **options)
    _check_sd_jwt_vc_claims(verified.claims)
    return verified


def _check_sd_jwt_vc_claims(claims: Mapping[str, Any]) -> None:
    for name in ("iss", "vct"):
        if not isinstance(claims.get(name), str):
            raise InvalidClaims(f"an SD-JWT VC needs a string {name}")
