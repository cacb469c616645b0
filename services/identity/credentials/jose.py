"""JWS compact signing and verification, with errors translated at the boundary.

Keys are jwcrypto JWKs (or JWK dicts); the signatures themselves are made and checked with their
`cryptography` key objects directly: jwcrypto's JWS object deep-copies its header registry on
every construction, which cost more than the ES256 signature it wraps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk
from jwcrypto.common import JWException

from chain.json_types import JsonObject
from chain.strict_json import json_depth, unique_members
from services.identity.credentials.b64 import b64url_decode as b64url_decode
from services.identity.credentials.b64 import b64url_encode as b64url_encode
from services.identity.credentials.keys import verifier_for
from services.identity.errors import (
    InvalidKey,
    InvalidSignature,
    MalformedToken,
    UnsupportedAlgorithm,
)

KeyLike: TypeAlias = "jwk.JWK | Mapping[str, Any]"

# Curve -> the one JWS algorithm we sign and accept with it (no RSA, no "none").
ALG_BY_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "Ed25519": "EdDSA"}
# ES* curve -> its hash and the byte size of r and of s in the JWS signature (RFC 7518 §3.4)
_ECDSA = {"P-256": (hashes.SHA256, 32), "P-384": (hashes.SHA384, 48), "P-521": (hashes.SHA512, 66)}


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, the byte form we sign."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


MAX_JSON_DEPTH = 32


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(data: bytes | str, what: str) -> Any:
    """Strict RFC 8259 JSON: no NaN/Infinity, no duplicate members, nesting at most 32 deep.

    What a signer wrote must mean one thing to every reader (RFC 7515 §5.2 lets a JWS reader
    refuse duplicate members), and nothing downstream should recurse without bound.
    """
    try:
        value = json.loads(data, parse_constant=_no_constant, object_pairs_hook=unique_members)
    except RecursionError as exc:
        raise MalformedToken(f"{what} nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedToken(f"{what} is not JSON: {exc}") from exc
    # Fewer opening brackets than the limit cannot nest deeper than it: skip the walk
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    opened = raw.count(b"[") + raw.count(b"{")
    if opened > MAX_JSON_DEPTH and json_depth(value) > MAX_JSON_DEPTH:
        raise MalformedToken(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse_json_object(data: bytes, what: str) -> JsonObject:
    """Parse bytes as a strict JSON object or raise MalformedToken naming `what`."""
    value = load_json(data, what)
    if not isinstance(value, dict):
        raise MalformedToken(f"{what} is not a JSON object")
    return value


def to_jwk(key: KeyLike) -> jwk.JWK:
    """Accept a jwcrypto JWK or a JWK dict; reject anything else as InvalidKey."""
    if isinstance(key, jwk.JWK):
        return key
    try:
        return jwk.JWK(**dict(key))
    except (JWException, TypeError, ValueError) as exc:
        raise InvalidKey(f"unusable JWK: {exc}") from exc


def alg_for_key(key: jwk.JWK) -> str:
    """The JWS algorithm a key signs with, checked against the key's own `alg` if it has one."""
    curve = key.get("crv")
    alg = ALG_BY_CURVE.get(curve) if isinstance(curve, str) else None
    if alg is None:
        raise UnsupportedAlgorithm(f"no supported algorithm for key type {key.get('kty')}/{curve}")
    declared = key.get("alg")
    if declared is not None and declared != alg:
        raise UnsupportedAlgorithm(f"key declares alg {declared} but its curve needs {alg}")
    return alg


def public_jwk(key: jwk.JWK) -> JsonObject:
    """The public half of a key as a JWK dict (for `cnf` and verification methods)."""
    exported: JsonObject = key.export_public(as_dict=True)
    return exported


def sign_compact(payload: Mapping[str, Any], key: KeyLike, header: Mapping[str, Any]) -> str:
    """Sign a JSON claims set as a JWS compact with the given protected header (alg added)."""
    signing_key = to_jwk(key)
    if not signing_key.has_private:
        raise InvalidKey("signing needs a private key")
    alg = alg_for_key(signing_key)
    protected = {"alg": alg, **header}
    signing_input = (
        f"{b64url_encode(json_bytes(protected))}.{b64url_encode(json_bytes(dict(payload)))}"
    )
    signature = _sign(signing_key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}"


def _sign(key: jwk.JWK, signing_input: bytes) -> bytes:
    """The JWS signature of `signing_input`: Ed25519's, or ECDSA's r and s at the curve's size."""
    private = key.get_op_key("sign")
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(signing_input)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise InvalidKey(f"cannot sign with a {type(private).__name__}")
    digest, size = _ECDSA[str(key.get("crv"))]
    r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(digest())))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def header_kid(header: JsonObject) -> str | None:
    """The header's `kid` when it is a string (what `vcdm.check_kid` asks of it), else None."""
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


@dataclass(frozen=True)
class Compact:
    """A parsed but unverified JWS compact: header, payload bytes and the raw token."""

    header: JsonObject
    payload: bytes
    token: str


def parse_compact(token: str) -> Compact:
    """Split and decode a JWS compact without verifying it."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise MalformedToken("not a JWS compact serialization")
    header = parse_json_object(b64url_decode(parts[0]), "JWS header")
    payload = b64url_decode(parts[1])
    b64url_decode(parts[2])
    return Compact(header=header, payload=payload, token=token.strip())


def verify_compact(token: str, key: KeyLike) -> Compact:
    """Verify a JWS compact with `key`; the header's `alg` must be the key's algorithm."""
    return verify_parsed(parse_compact(token), key)


def verify_parsed(parsed: Compact, key: KeyLike) -> Compact:
    """verify_compact for a token parse_compact already parsed."""
    public = key.export_public(as_dict=True) if isinstance(key, jwk.JWK) else key
    if not isinstance(public, Mapping):
        raise InvalidKey("a verification key is a JWK")
    expected, verify = verifier_for(public)
    # Verify the header names the key's algorithm: no alg confusion, no "none"
    if parsed.header.get("alg") != expected:
        raise UnsupportedAlgorithm(
            f"header alg {parsed.header.get('alg')!r} does not match the key's {expected}"
        )
    # Verify no extension changes what is signed: no crit, no unencoded payload (RFC 7797)
    if "crit" in parsed.header or parsed.header.get("b64", True) is not True:
        raise MalformedToken("JWS extensions (crit, b64) are not accepted")
    signing_input, _, signature = parsed.token.rpartition(".")
    if not verify(b64url_decode(signature), signing_input.encode("ascii")):
        raise InvalidSignature("signature does not verify with the given key")
    return parsed
