"""VCDM 2.0 credentials and presentations secured with COSE_Sign1 (`application/vc+cose`).

W3C "Securing Verifiable Credentials using JOSE and COSE", section 3.3: the credential JSON is the
payload of a COSE_Sign1 (RFC 9052, CBOR tag 18) whose protected header carries `alg` (1), the
content type `application/vc` (3), `kid` (4) and `typ` `application/vc+cose` (16); presentations
use `application/vp` and `application/vp+cose`. The secured form is base64 (what an enveloped
credential's `data:application/vc+cose;base64,` URL carries). Keys are JWKs as in vc_jose:
EdDSA (Ed25519) and ES256/384/512, the signature the raw one JOSE uses (r || s for ECDSA).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from chain.json_types import JsonObject
from services.identity.credentials import vcdm
from services.identity.credentials.jose import KeyLike, json_bytes, parse_json_object, to_jwk
from services.identity.credentials.keys import CURVES, verifier_for
from services.identity.errors import (
    InvalidKey,
    InvalidMediaType,
    InvalidSignature,
    MalformedToken,
    UnsupportedAlgorithm,
)

COSE_SIGN1_TAG = 18
ALG, CONTENT_TYPE, KID, TYP = 1, 3, 4, 16
COSE_ALGS = {"EdDSA": -8, "ES256": -7, "ES384": -35, "ES512": -36}
CREDENTIAL = ("application/vc", "application/vc+cose")
PRESENTATION = ("application/vp", "application/vp+cose")


@dataclass(frozen=True)
class VerifiedCose:
    """A COSE-secured credential or presentation whose signature and data model checks passed."""

    protected: dict[int, Any]
    document: JsonObject

    @property
    def kid(self) -> str | None:
        kid = self.protected.get(KID)
        return kid.decode("utf-8", "replace") if isinstance(kid, bytes) else None


def issue_credential(credential: Mapping[str, Any], key: KeyLike, *, kid: str | None = None) -> str:
    """Secure a credential as base64 COSE_Sign1 (`application/vc+cose`)."""
    document = dict(credential)
    vcdm.check_no_vc_vp_claims(document)
    vcdm.check_credential(document, strict=True)
    return _sign(document, key, kid, CREDENTIAL)


def issue_presentation(
    presentation: Mapping[str, Any], key: KeyLike, *, kid: str | None = None
) -> str:
    """Secure a presentation as base64 COSE_Sign1 (`application/vp+cose`)."""
    document = dict(presentation)
    vcdm.check_no_vc_vp_claims(document)
    vcdm.check_presentation(document, strict=True)
    return _sign(document, key, kid, PRESENTATION)


def verify_credential(text: str, key: KeyLike) -> VerifiedCose:
    """Verify an `application/vc+cose` credential: structure, media types, signature, data model."""
    protected, document = _verify(text, key, CREDENTIAL)
    vcdm.check_no_vc_vp_claims(document)
    vcdm.check_credential(document, strict=False)
    return VerifiedCose(protected, document)


def verify_presentation(
    text: str, key: KeyLike
) -> tuple[VerifiedCose, tuple[vcdm.EnvelopedCredential, ...]]:
    """Verify an `application/vp+cose` presentation; its credentials must be enveloped, secured."""
    protected, document = _verify(text, key, PRESENTATION)
    vcdm.check_no_vc_vp_claims(document)
    vcdm.check_presentation(document, strict=False)
    entries = document.get("verifiableCredential", [])
    items = entries if isinstance(entries, list) else [entries]
    return VerifiedCose(protected, document), tuple(vcdm.open_envelope(e) for e in items)


def _sign(document: JsonObject, key: KeyLike, kid: str | None, media: tuple[str, str]) -> str:
    signer = to_jwk(key)
    if not signer.has_private:
        raise InvalidKey("signing needs a private key")
    public = signer.export_public(as_dict=True)
    alg, _ = verifier_for(public)
    header: dict[int, Any] = {ALG: COSE_ALGS[alg], CONTENT_TYPE: media[0], TYP: media[1]}
    resolved_kid = kid if kid is not None else signer.get("kid")
    if resolved_kid is not None:
        header[KID] = str(resolved_kid).encode("utf-8")
    protected = cbor2.dumps(header)
    payload = json_bytes(document)
    signature = _raw_signature(
        signer.get_op_key("sign"), public["crv"], _to_be_signed(protected, payload)
    )
    message = cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature])
    return base64.b64encode(cbor2.dumps(message)).decode("ascii")


def _to_be_signed(protected: bytes, payload: bytes) -> bytes:
    """Sig_structure for COSE_Sign1 (RFC 9052, section 4.4), no external data."""
    return bytes(cbor2.dumps(["Signature1", protected, b"", payload]))


def _raw_signature(private: Any, crv: str, data: bytes) -> bytes:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return bytes(private.sign(data))
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise InvalidKey("COSE signing needs an Ed25519 or NIST EC private key")
    digests: dict[str, hashes.HashAlgorithm] = {
        "P-256": hashes.SHA256(),
        "P-384": hashes.SHA384(),
        "P-521": hashes.SHA512(),
    }
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(digests[crv])))
    size = CURVES[crv][1]
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def looks_like_cose(token: str) -> bool:
    """A base64 COSE-secured credential, as opposed to a JWS or an SD-JWT (which have dots)."""
    return "." not in token and "~" not in token


def parse_unverified(text: str) -> tuple[dict[int, Any], JsonObject]:
    """The protected header and the payload, before any check: to find the signer's key."""
    protected_bytes, protected, payload, _ = _parse(text)
    del protected_bytes
    return protected, parse_json_object(payload, "COSE payload")


def _verify(text: str, key: KeyLike, media: tuple[str, str]) -> tuple[dict[int, Any], JsonObject]:
    protected_bytes, protected, payload, signature = _parse(text)
    public = to_jwk(key).export_public(as_dict=True) if not isinstance(key, Mapping) else key
    alg, verify = verifier_for(public)
    # Verify the protected alg is the key's (no algorithm confusion) and the media types match
    if protected.get(ALG) != COSE_ALGS[alg]:
        raise UnsupportedAlgorithm(f"COSE alg {protected.get(ALG)!r} is not the key's {alg}")
    if protected.get(TYP) != media[1]:
        raise InvalidMediaType(f"typ must be {media[1]}, got {protected.get(TYP)!r}")
    if CONTENT_TYPE in protected and protected[CONTENT_TYPE] != media[0]:
        raise InvalidMediaType(f"content type must be {media[0]}, got {protected[CONTENT_TYPE]!r}")
    if not verify(signature, _to_be_signed(protected_bytes, payload)):
        raise InvalidSignature("the COSE signature does not verify with the given key")
    return protected, parse_json_object(payload, "COSE payload")


def _parse(text: str) -> tuple[bytes, dict[int, Any], bytes, bytes]:
    raw = _base64(text.strip())
    try:
        message = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedToken(f"not CBOR: {exc}") from exc
    if isinstance(message, cbor2.CBORTag):
        if message.tag != COSE_SIGN1_TAG:
            raise MalformedToken(f"CBOR tag {message.tag} is not COSE_Sign1 (18)")
        message = message.value
    # Verify the COSE_Sign1 structure: [protected bstr, unprotected map, payload bstr, sig bstr]
    # (cbor2 gives a tagged array as a tuple and its maps as frozendicts)
    if not (
        isinstance(message, list | tuple)
        and len(message) == 4
        and isinstance(message[0], bytes)
        and isinstance(message[1], Mapping)
        and isinstance(message[2], bytes)
        and isinstance(message[3], bytes)
    ):
        raise MalformedToken("not a COSE_Sign1 [protected, unprotected, payload, signature]")
    protected_bytes, _unprotected, payload, signature = message
    try:
        protected = cbor2.loads(protected_bytes) if protected_bytes else {}
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedToken(f"the protected header is not CBOR: {exc}") from exc
    if not isinstance(protected, Mapping):
        raise MalformedToken("the protected header is not a map")
    return protected_bytes, dict(protected), payload, signature


def _base64(text: str) -> bytes:
    """The base64 (or base64url) form VC-JOSE-COSE gives a COSE-secured credential."""
    alphabet = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(alphabet + "=" * (-len(alphabet) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("a COSE-secured credential is base64 encoded") from exc
