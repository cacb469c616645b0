"""W3C VC Data Model 2.0 checks shared by the VC-JOSE and SD-JWT securing formats."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.identity._jose import JsonObject, parse_compact
from services.identity.errors import (
    IdentityError,
    InvalidClaims,
    InvalidEnvelopedCredential,
    InvalidKeyId,
    InvalidMediaType,
    IssuerMismatch,
    TokenExpired,
    TokenNotYetValid,
    UnknownCredentialProperty,
)

VC_CONTEXT_V2 = "https://www.w3.org/ns/credentials/v2"
ENVELOPED_VC_TYPE = "EnvelopedVerifiableCredential"

# Members VCDM 2.0 defines (or reserves) at the top of a credential / presentation.
CREDENTIAL_PROPERTIES = frozenset(
    {
        "@context", "id", "type", "name", "description", "issuer", "credentialSubject",
        "validFrom", "validUntil", "credentialStatus", "credentialSchema", "refreshService",
        "termsOfUse", "evidence", "relatedResource", "renderMethod", "confidenceMethod",
    }
)  # fmt: skip
PRESENTATION_PROPERTIES = frozenset(
    {"@context", "id", "type", "holder", "verifiableCredential", "termsOfUse", "name",
     "description"}
)  # fmt: skip
# JWT and SD-JWT claims a securing format adds on top of the data model.
SECURING_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "cnf", "nonce", "_sd", "_sd_alg", "status"}
)
ENVELOPE_MEDIA_TYPES = frozenset(
    {
        "application/vc+jwt", "application/vc+sd-jwt", "application/dc+sd-jwt",
        "application/vc+cose", "application/vp+jwt", "application/vp+sd-jwt",
    }
)  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def id_of(value: Any) -> str | None:
    """The identifier of an issuer/holder given as a URL string or as an object with `id`."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def check_context_and_type(document: Mapping[str, Any], required_type: str) -> None:
    """Verify `@context` starts with the VCDM 2.0 context and `type` names `required_type`."""
    contexts = _as_list(document.get("@context"))
    if not contexts or contexts[0] != VC_CONTEXT_V2:
        raise InvalidClaims(f"@context must start with {VC_CONTEXT_V2}")
    if required_type not in _as_list(document.get("type")):
        raise InvalidClaims(f"type must include {required_type}")


def check_no_vc_vp_claims(claims: Mapping[str, Any]) -> None:
    """Verify the claims set carries no VC-JWT 1.1 `vc`/`vp` claims (VC-JOSE-COSE forbids them)."""
    for name in ("vc", "vp"):
        if name in claims:
            raise InvalidClaims(f"the JWT claim {name!r} must not be present")


def check_unknown_properties(document: Mapping[str, Any], known: frozenset[str]) -> None:
    """An issuer does not sign top-level members the data model does not define."""
    unknown = sorted(set(document) - known - SECURING_CLAIMS)
    if unknown:
        raise UnknownCredentialProperty(f"unknown top-level properties: {', '.join(unknown)}")


def parse_datetime(value: Any, name: str) -> datetime:
    """Parse an XML Schema dateTimeStamp (RFC 3339 with a time zone)."""
    if not isinstance(value, str):
        raise InvalidClaims(f"{name} must be a date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidClaims(f"{name} is not a date-time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidClaims(f"{name} needs a time zone: {value!r}")
    return parsed


def check_credential(document: Mapping[str, Any], *, strict: bool) -> None:
    """Verify the shape VCDM 2.0 requires of a credential; `strict` refuses unknown members."""
    check_context_and_type(document, "VerifiableCredential")
    if id_of(document.get("issuer")) is None:
        raise InvalidClaims("issuer must be a URL or an object with an id")
    subjects = _as_list(document.get("credentialSubject"))
    if not subjects or not all(isinstance(s, Mapping) and s for s in subjects):
        raise InvalidClaims("credentialSubject must be a non-empty object or list of objects")
    for name in ("validFrom", "validUntil"):
        if name in document:
            parse_datetime(document[name], name)
    if strict:
        check_unknown_properties(document, CREDENTIAL_PROPERTIES)


def check_presentation(document: Mapping[str, Any], *, strict: bool) -> None:
    """Verify the shape of a presentation and that each credential in it is enveloped."""
    check_context_and_type(document, "VerifiablePresentation")
    if "holder" in document and id_of(document["holder"]) is None:
        raise InvalidClaims("holder must be a URL or an object with an id")
    for entry in _as_list(document.get("verifiableCredential", [])):
        envelope_media_type(entry)
    if strict:
        check_unknown_properties(document, PRESENTATION_PROPERTIES)


def check_iss(claims: Mapping[str, Any], subject_field: str) -> None:
    """Verify `iss`, when present, equals `issuer` (or `issuer.id`; `holder` for presentations)."""
    if "iss" not in claims or subject_field not in claims:
        return
    if claims["iss"] != id_of(claims[subject_field]):
        raise IssuerMismatch(f"iss {claims['iss']!r} does not match {subject_field}")


def check_kid(header: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """Without `iss`, `kid` must be an absolute URL naming the signer's verification method."""
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidKeyId("kid must be a string")
    if "iss" not in claims and not is_absolute_url(kid):
        raise InvalidKeyId("without iss, kid must be an absolute URL of a verification method")


def is_absolute_url(value: Any) -> bool:
    """True for `scheme:rest` URLs such as https://... and did:... URLs."""
    if not isinstance(value, str) or ":" not in value:
        return False
    scheme = value.split(":", 1)[0]
    return scheme.isascii() and scheme[:1].isalpha() and scheme.replace("+", "").isalnum()


def check_time(claims: Mapping[str, Any], now: float | None, leeway_s: float) -> None:
    """Verify numeric `nbf`/`exp` and the validity period against `now` (None skips the check)."""
    if now is None:
        return
    exp, nbf = claims.get("exp"), claims.get("nbf")
    # Non-numeric time claims are not JWT NumericDates; they are not understood and ignored.
    if isinstance(exp, int | float) and now > exp + leeway_s:
        raise TokenExpired("the token's exp has passed")
    if isinstance(nbf, int | float) and now + leeway_s < nbf:
        raise TokenNotYetValid("the token's nbf is in the future")
    if "validFrom" in claims and parse_datetime(claims["validFrom"], "validFrom").timestamp() > (
        now + leeway_s
    ):
        raise TokenNotYetValid("validFrom is in the future")
    if "validUntil" in claims and parse_datetime(claims["validUntil"], "validUntil").timestamp() < (
        now - leeway_s
    ):
        raise TokenExpired("validUntil has passed")


def check_media_type(header: Mapping[str, Any], typ: str, cty: str | None) -> None:
    """Verify `typ` (with or without `application/`) and, when present, `cty`."""
    if strip_application(header.get("typ")) != typ:
        raise InvalidMediaType(f"typ must be {typ}, got {header.get('typ')!r}")
    if cty is not None and "cty" in header and strip_application(header["cty"]) != cty:
        raise InvalidMediaType(f"cty must be {cty}, got {header.get('cty')!r}")


def strip_application(value: Any) -> Any:
    """RFC 7515 lets `typ`/`cty` omit the `application/` prefix; compare without it."""
    if isinstance(value, str) and value.lower().startswith("application/"):
        return value[len("application/") :]
    return value


@dataclass(frozen=True)
class EnvelopedCredential:
    """A secured credential carried in a presentation as a data: URL."""

    media_type: str
    token: str


def envelope(token: str, media_type: str = "application/vc+jwt") -> JsonObject:
    """Wrap a secured credential as an EnvelopedVerifiableCredential for a presentation."""
    if media_type not in ENVELOPE_MEDIA_TYPES:
        raise InvalidEnvelopedCredential(f"unknown media type {media_type}")
    separator = ";base64," if media_type.endswith("+cose") else ","
    return {
        "@context": VC_CONTEXT_V2,
        "id": f"data:{media_type}{separator}{token}",
        "type": ENVELOPED_VC_TYPE,
    }


def envelope_media_type(entry: Any) -> EnvelopedCredential:
    """Check an entry is an EnvelopedVerifiableCredential with a data: URL of a known type."""
    if not isinstance(entry, Mapping) or ENVELOPED_VC_TYPE not in _as_list(entry.get("type")):
        raise InvalidEnvelopedCredential("credentials in a presentation must be enveloped")
    url = entry.get("id")
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        raise InvalidEnvelopedCredential("an enveloped credential's id must be a data: URL")
    head, token = url[len("data:") :].split(",", 1)
    media_type = head.removesuffix(";base64")
    if media_type not in ENVELOPE_MEDIA_TYPES:
        raise InvalidEnvelopedCredential(f"unknown enveloped media type {media_type!r}")
    return EnvelopedCredential(media_type=media_type, token=token.strip())


def open_envelope(entry: Any) -> EnvelopedCredential:
    """Check an enveloped credential is a well-formed secured credential of its media type."""
    enveloped = envelope_media_type(entry)
    try:
        if enveloped.media_type.endswith("+cose"):
            _check_cose_sign1(enveloped.token)
        else:
            compact = enveloped.token.split("~", 1)[0]
            header = parse_compact(compact).header
            typ = enveloped.media_type.removeprefix("application/")
            if "typ" in header and strip_application(header["typ"]) != typ:
                raise InvalidMediaType(f"enveloped typ {header['typ']!r} is not {typ}")
    except IdentityError as exc:
        raise InvalidEnvelopedCredential(f"enveloped credential is not secured: {exc}") from exc
    return enveloped


def _check_cose_sign1(text: str) -> None:
    """Structural check of a base64 COSE_Sign1: a (tagged) CBOR array of four items."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEnvelopedCredential("COSE credential is not base64") from exc
    body = raw[1:] if raw[:1] == b"\xd2" else raw  # CBOR tag 18 = COSE_Sign1
    if body[:1] != b"\x84":
        raise InvalidEnvelopedCredential("COSE credential is not a COSE_Sign1 structure")
