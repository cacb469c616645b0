"""W3C VC Data Model 2.0 checks shared by the VC-JOSE and SD-JWT securing formats."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from chain.json_types import JsonObject
from services.identity.credentials.jose import parse_compact
from services.identity.credentials.keys import check_public_jwk
from services.identity.errors import (
    IdentityError,
    InvalidClaims,
    InvalidEnvelopedCredential,
    InvalidKey,
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
        "@context",
        "id",
        "type",
        "name",
        "description",
        "issuer",
        "credentialSubject",
        "validFrom",
        "validUntil",
        "credentialStatus",
        "credentialSchema",
        "refreshService",
        "termsOfUse",
        "evidence",
        "relatedResource",
        "renderMethod",
        "confidenceMethod",
    }
)
PRESENTATION_PROPERTIES = frozenset(
    {
        "@context",
        "id",
        "type",
        "holder",
        "verifiableCredential",
        "termsOfUse",
        "name",
        "description",
    }
)
# JWT and SD-JWT claims a securing format adds on top of the data model.
SECURING_CLAIMS = frozenset(
    {"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "cnf", "nonce", "_sd", "_sd_alg", "status"}
)
# datetime handles years 1..9999; a NumericDate outside that range cannot be compared with now.
MAX_NUMERIC_DATE = 253_402_300_799
ENVELOPE_MEDIA_TYPES = frozenset(
    {
        "application/vc+jwt",
        "application/vc+sd-jwt",
        "application/dc+sd-jwt",
        "application/vc+cose",
        "application/vp+jwt",
        "application/vp+sd-jwt",
    }
)


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
    if not all(isinstance(c, str | Mapping) for c in contexts):
        raise InvalidClaims("@context items must be URLs or objects")
    types = _as_list(document.get("type"))
    if not all(isinstance(t, str) and t for t in types):
        raise InvalidClaims("type must be a string or a list of non-empty strings")
    if required_type not in types:
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
    try:
        parsed.timestamp()
    except (OverflowError, ValueError) as exc:
        raise InvalidClaims(f"{name} is out of range: {value!r}") from exc
    return parsed


def check_credential(document: Mapping[str, Any], *, strict: bool) -> None:
    """Verify the shape VCDM 2.0 requires of every member a verifier reads.

    `strict` (issuance) also refuses members the data model does not define.
    """
    check_context_and_type(document, "VerifiableCredential")
    _check_optional_url(document, "id")
    if id_of(document.get("issuer")) is None:
        raise InvalidClaims("issuer must be a URL or an object with a string id")
    subjects(document)
    for name in ("validFrom", "validUntil"):
        if name in document:
            parse_datetime(document[name], name)
    for name in ("name", "description"):
        if name in document:
            _check_language_values(document[name], name)
    for entry in _objects(document, "credentialStatus", min_items=0):
        _check_string_member(entry, "type", "credentialStatus")
        _check_optional_url(entry, "id", "credentialStatus")
        for member in ("statusPurpose", "statusListIndex", "statusListCredential"):
            if member in entry:
                _check_string_member(entry, member, "credentialStatus")
    for entry in _objects(document, "credentialSchema", min_items=0):
        _check_string_member(entry, "id", "credentialSchema")
        _check_string_member(entry, "type", "credentialSchema")
        if "digestSRI" in entry:
            _check_string_member(entry, "digestSRI", "credentialSchema")
    for name in (
        "evidence",
        "termsOfUse",
        "refreshService",
        "renderMethod",
        "relatedResource",
        "confidenceMethod",
    ):
        _objects(document, name, min_items=0)
    check_jwt_claims(document)
    if strict:
        check_unknown_properties(document, CREDENTIAL_PROPERTIES)


def subjects(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The credential's subjects (one object, or a list of them, as VCDM 2.0 allows)."""
    found = _objects(document, "credentialSubject", min_items=1)
    for subject in found:
        if not subject:
            raise InvalidClaims("credentialSubject must not be an empty object")
        _check_optional_url(subject, "id", "credentialSubject")
    return found


def subject_ids(document: Mapping[str, Any]) -> list[str]:
    """The ids of the subjects that have one, in order (call after check_credential)."""
    return [s["id"] for s in _as_list(document.get("credentialSubject")) if "id" in s]


def _objects(document: Mapping[str, Any], name: str, *, min_items: int) -> list[Mapping[str, Any]]:
    value = document.get(name)
    if value is None and name not in document and min_items == 0:
        return []
    items = _as_list(value)
    if len(items) < max(min_items, 1) or not all(isinstance(i, Mapping) for i in items):
        raise InvalidClaims(f"{name} must be an object or a non-empty list of objects")
    return items


def _check_string_member(entry: Mapping[str, Any], member: str, where: str) -> None:
    if not isinstance(entry.get(member), str):
        raise InvalidClaims(f"{where}.{member} must be a string")


def _check_optional_url(entry: Mapping[str, Any], member: str, where: str = "") -> None:
    if member in entry and not is_absolute_url(entry[member]):
        name = f"{where}.{member}" if where else member
        raise InvalidClaims(f"{name} must be a URL string")


def _check_language_values(value: Any, name: str) -> None:
    """`name`/`description`: a string, or language value objects ({@value, @language, ...})."""
    for item in _as_list(value):
        if isinstance(item, str):
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("@value"), str):
            raise InvalidClaims(f"{name} must be a string or language value objects")


def check_jwt_claims(claims: Mapping[str, Any]) -> None:
    """Verify the registered JWT claims present have the types RFC 7519 gives them."""
    # exp and nbf limit validity, so one that cannot be read is refused, never ignored; iat is
    # only informative here, and the W3C suite's own fixtures write it as an RFC 3339 string.
    for name in ("nbf", "exp"):
        if name in claims and not is_numeric_date(claims[name]):
            raise InvalidClaims(f"{name} must be a NumericDate (seconds since 1970)")
    for name in ("iss", "sub", "jti", "nonce"):
        if name in claims and not isinstance(claims[name], str):
            raise InvalidClaims(f"{name} must be a string")
    if "aud" in claims:
        audiences = _as_list(claims["aud"])
        if not audiences or not all(isinstance(a, str) for a in audiences):
            raise InvalidClaims("aud must be a string or a list of strings")
    if "cnf" in claims:
        cnf = claims["cnf"]
        if not isinstance(cnf, Mapping) or "jwk" not in cnf:
            raise InvalidClaims("cnf must be an object with a jwk")
        try:
            check_public_jwk(cnf["jwk"], where="cnf.jwk")
        except InvalidKey as exc:
            raise InvalidClaims(str(exc)) from exc


def is_numeric_date(value: Any) -> bool:
    """An RFC 7519 NumericDate: a finite JSON number, not a boolean, within datetime's range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE


def credential_claims(
    credential: Mapping[str, Any], *, issued_at: int | None, strict: bool
) -> JsonObject:
    """The claims a credential is signed with (vc+jwt, vc+sd-jwt): the checked document, its
    issuer as `iss`, and `iat`."""
    document = dict(credential)
    check_no_vc_vp_claims(document)
    check_credential(document, strict=strict)
    claims: JsonObject = {**document, "iss": id_of(document["issuer"])}
    claims["iat"] = int(time.time()) if issued_at is None else issued_at
    return claims


def presentation_claims(
    presentation: Mapping[str, Any],
    *,
    issued_at: int | None,
    ttl_s: int,
    strict: bool,
    with_jti: bool = False,
) -> JsonObject:
    """The claims a presentation is signed with (vp+jwt, vp+sd-jwt): the checked document, its
    `iat` and `exp`, its id as `jti` when asked (a generated URN without one), the holder as
    `iss`."""
    document = dict(presentation)
    check_no_vc_vp_claims(document)
    check_presentation(document, strict=strict)
    iat = int(time.time()) if issued_at is None else issued_at
    claims: JsonObject = {**document, "iat": iat, "exp": iat + ttl_s}
    if with_jti:
        claims["jti"] = document.get("id") or f"urn:uuid:{uuid.uuid4()}"
    holder = id_of(document.get("holder"))
    if holder is not None:
        claims["iss"] = holder
    return claims


def check_presentation(document: Mapping[str, Any], *, strict: bool) -> None:
    """Verify the shape of a presentation and that each credential in it is enveloped."""
    check_context_and_type(document, "VerifiablePresentation")
    _check_optional_url(document, "id")
    if "holder" in document and id_of(document["holder"]) is None:
        raise InvalidClaims("holder must be a URL or an object with an id")
    check_jwt_claims(document)
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


class DocumentCheck(Protocol):
    """check_credential or check_presentation: the data model of one kind of document."""

    def __call__(self, document: Mapping[str, Any], *, strict: bool) -> None: ...


def check_jose_document(
    header: Mapping[str, Any], claims: Mapping[str, Any], *, check: DocumentCheck, iss_member: str
) -> None:
    """A JOSE-secured document's claims (vc+jwt, vp+jwt, SD-JWT): no `vc`/`vp` claim, the data
    model `check` (unknown members allowed), `iss` against `iss_member` and the header's `kid`."""
    check_no_vc_vp_claims(claims)
    check(claims, strict=False)
    check_iss(claims, iss_member)
    check_kid(header, claims)


def is_absolute_url(value: Any) -> bool:
    """True for `scheme:rest` URLs such as https://... and did:... URLs."""
    if not isinstance(value, str) or ":" not in value:
        return False
    scheme = value.split(":", 1)[0]
    return scheme.isascii() and scheme[:1].isalpha() and scheme.replace("+", "").isalnum()


def check_time(claims: Mapping[str, Any], now: float | None, leeway_s: float) -> None:
    """Verify RFC 7519 `exp`/`nbf` and the VCDM validity period against `now` (None skips).

    `exp` is exclusive (the token is invalid at and after it), `nbf` inclusive; an `exp` or
    `nbf` that is not a NumericDate is refused, never ignored.
    """
    if now is None:
        return
    for name in ("exp", "nbf"):
        if name in claims and not is_numeric_date(claims[name]):
            raise InvalidClaims(f"{name} must be a NumericDate (seconds since 1970)")
    if "exp" in claims and now >= claims["exp"] + leeway_s:
        raise TokenExpired(f"exp {_moment(claims['exp'])} has passed")
    if "nbf" in claims and now + leeway_s < claims["nbf"]:
        raise TokenNotYetValid(f"nbf {_moment(claims['nbf'])} is in the future")
    if "validFrom" in claims and parse_datetime(claims["validFrom"], "validFrom").timestamp() > (
        now + leeway_s
    ):
        raise TokenNotYetValid("validFrom is in the future")
    if "validUntil" in claims and parse_datetime(claims["validUntil"], "validUntil").timestamp() < (
        now - leeway_s
    ):
        raise TokenExpired("validUntil has passed")


def _moment(numeric_date: float) -> str:
    try:
        moment = datetime.fromtimestamp(numeric_date, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(numeric_date)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


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
