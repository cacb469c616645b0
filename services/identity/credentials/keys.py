"""Full validation of public JWKs before anything else reads them.

A key a DID document publishes, or a credential binds its holder to (`cnf.jwk`), is checked
here: its members and their types, `kty`/`crv`, strict base64url of each coordinate with its
exact length, that an EC point lies on its curve, and that an Ed25519 point is a canonical
encoding of a curve point whose order is not small (RFC 8032 §5.1.3; a small-order key lets
one signature verify for many messages). Every refusal is an InvalidKey naming the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from services.identity.credentials.b64 import b64url_decode
from services.identity.errors import InvalidKey, MalformedToken

# crv -> (kty, coordinate length in bytes, JWS alg)
CURVES: dict[str, tuple[str, int, str]] = {
    "Ed25519": ("OKP", 32, "EdDSA"),
    "P-256": ("EC", 32, "ES256"),
    "P-384": ("EC", 48, "ES384"),
    "P-521": ("EC", 66, "ES512"),
}
_EC_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "P-256": hashes.SHA256,
    "P-384": hashes.SHA384,
    "P-521": hashes.SHA512,
}
_EC_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")

# Ed25519 (RFC 8032 §5.1): the field prime and the curve constant d.
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def check_public_jwk(
    raw: Any, *, where: str = "publicKeyJwk", curves: frozenset[str] | None = None
) -> dict[str, str]:
    """The key's public members (kty, crv, x[, y]) after every check, or InvalidKey."""
    # Verify the key is a JSON object of string members, public only
    if not isinstance(raw, Mapping):
        raise InvalidKey(f"{where} must be a JSON object")
    private = [m for m in PRIVATE_MEMBERS if m in raw]
    if private:
        raise InvalidKey(f"{where} must not contain private key members ({', '.join(private)})")
    for name in ("kty", "crv", "x", "y", "alg", "use", "kid"):
        if name in raw and not isinstance(raw[name], str):
            raise InvalidKey(f"{where}.{name} must be a string")
    kty, crv = raw.get("kty"), raw.get("crv")
    # Verify the key type and curve are supported and agree
    if kty is None:
        raise InvalidKey(f"{where}.kty is missing")
    allowed = curves if curves is not None else frozenset(CURVES)
    supported = ", ".join(f"{c} ({CURVES[c][0]})" for c in sorted(allowed))
    if kty not in ("OKP", "EC"):
        raise InvalidKey(f"{where}.kty {kty!r} is not supported: keys are {supported}")
    if crv is None:
        raise InvalidKey(f"{where}.crv is missing")
    if crv not in allowed:
        raise InvalidKey(f"{where}.crv {crv!r} is not supported: keys are {supported}")
    want_kty, size, alg = CURVES[crv]
    if kty != want_kty:
        raise InvalidKey(f"{where}: crv {crv} needs kty {want_kty}, not {kty}")
    if raw.get("alg") not in (None, alg):
        raise InvalidKey(f"{where}.alg {raw['alg']!r} does not fit crv {crv} (needs {alg})")
    if raw.get("use") not in (None, "sig"):
        raise InvalidKey(f"{where}.use must be sig")
    x = _coordinate(raw, "x", size, where)
    members = {"kty": kty, "crv": crv, "x": raw["x"]}
    if kty == "OKP":
        if "y" in raw:
            raise InvalidKey(f"{where}: an OKP key has no y")
        check_ed25519_point(x, where)
        return members
    y = _coordinate(raw, "y", size, where)
    check_ec_point(crv, x, y, where)
    return {**members, "y": raw["y"]}


def _coordinate(raw: Mapping[str, Any], name: str, size: int, where: str) -> bytes:
    if name not in raw:
        raise InvalidKey(f"{where}.{name} is missing")
    try:
        value = b64url_decode(raw[name])
    except MalformedToken as exc:
        raise InvalidKey(f"{where}.{name} is not base64url without padding") from exc
    if len(value) != size:
        raise InvalidKey(f"{where}.{name} must be {size} bytes for {raw['crv']}, not {len(value)}")
    return value


def check_ec_point(crv: str, x: bytes, y: bytes, where: str = "publicKeyJwk") -> None:
    """Verify (x, y) is a point of the named NIST curve (cryptography checks the equation)."""
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), _EC_CURVES[crv]
    )
    try:
        numbers.public_key()
    except ValueError as exc:
        raise InvalidKey(f"{where}: the point (x, y) is not on curve {crv}") from exc


def check_ed25519_point(encoded: bytes, where: str = "publicKeyJwk") -> None:
    """Verify a canonical Ed25519 point encoding of a point whose order is not small."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    sign = encoded[31] >> 7
    # Verify the encoding is canonical and decodes to a point on the curve (RFC 8032 §5.1.3)
    if y >= _P:
        raise InvalidKey(f"{where}.x is not a canonical Ed25519 point encoding (y >= p)")
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = _sqrt_ratio(u, v)
    if x is None:
        raise InvalidKey(f"{where}.x is not a point on the Ed25519 curve")
    if x == 0 and sign:
        raise InvalidKey(f"{where}.x is not a canonical Ed25519 point encoding (-0)")
    if x & 1 != sign:
        x = _P - x
    # Verify the point is not of small order: 8·P must not be the neutral element
    if _is_neutral(_times_eight((x, y, 1, x * y % _P))):
        raise InvalidKey(f"{where}.x is an Ed25519 point of small order")


def _sqrt_ratio(u: int, v: int) -> int | None:
    """A square root of u/v mod p, or None (RFC 8032 §5.1.3 step 3)."""
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P == 0:
        return x
    if (v * x * x + u) % _P == 0:
        return (x * _SQRT_M1) % _P
    return None


Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _double(point: Point) -> Point:
    x1, y1, z1, _ = point
    a, b, c = x1 * x1 % _P, y1 * y1 % _P, 2 * z1 * z1 % _P
    h = (a + b) % _P
    e = (h - (x1 + y1) * (x1 + y1)) % _P
    g = (a - b) % _P
    f = (c + g) % _P
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _times_eight(point: Point) -> Point:
    return _double(_double(_double(point)))


def _is_neutral(point: Point) -> bool:
    x, y, z, _ = point
    return x % _P == 0 and (y - z) % _P == 0


# -- verifying with a checked key ------------------------------------------------------------------

Verifier = Callable[[bytes, bytes], bool]
PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "alg", "use", "kid")


def verifier_for(key: Mapping[str, Any]) -> tuple[str, Verifier]:
    """The JWS alg and a `verify(signature, signing_input) -> bool` for a public JWK.

    The key is checked fully once (check_public_jwk) and its `cryptography` public key object is
    cached, so verifying many tokens with one issuer key costs one signature check each.
    """
    public = tuple((m, key[m]) for m in PUBLIC_MEMBERS if m in key)
    return _cached_verifier(public)


@lru_cache(maxsize=4096)
def _cached_verifier(public: tuple[tuple[str, Any], ...]) -> tuple[str, Verifier]:
    members = check_public_jwk(dict(public), where="verification key")
    crv = members["crv"]
    alg = CURVES[crv][2]
    x = b64url_decode(members["x"])
    if crv == "Ed25519":
        ed_key = ed25519.Ed25519PublicKey.from_public_bytes(x)

        def verify_ed25519(signature: bytes, signing_input: bytes) -> bool:
            try:
                ed_key.verify(signature, signing_input)
            except InvalidSignature:
                return False
            return True

        return alg, verify_ed25519
    size = CURVES[crv][1]
    ec_key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"),
        int.from_bytes(b64url_decode(members["y"]), "big"),
        _EC_CURVES[crv],
    ).public_key()
    digest = _EC_HASHES[crv]

    def verify_ecdsa(signature: bytes, signing_input: bytes) -> bool:
        # Verify the JWS form of the signature: r and s, each exactly the curve's size (RFC 7518)
        if len(signature) != 2 * size:
            return False
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        try:
            ec_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest()))
        except InvalidSignature:
            return False
        return True

    return alg, verify_ecdsa
