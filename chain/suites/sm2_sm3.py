"""The national suite: SM3 hashes, SM2 signatures (GB/T 32918.2, GM/T 0009), SM4-GCM at rest.

Bytes, as the chain sees them:
- hash: SM3 (GB/T 32905), 32 bytes, from `cryptography`;
- public key: 65 bytes `04 || X || Y` on sm2p256v1, lowercase hex (130 characters);
- signature: 64 bytes `r || s` (each 32 bytes big-endian, 1 <= r, s < n) over the message with
  ID "1234567812345678", e = SM3(Z || message); randomised, so an id must never hash it.
  DER (strict) exists only at the OpenSSL boundary (sm2_openssl.py);
- key file: a private JWK `{"kty":"EC","crv":"SM2","x","y","d","kid"}`, x, y, d 32-byte
  unpadded base64url, kid = the public key hex, mode 0600;
- JWS alg: SM2SM3 (unregistered; docs/sm-suite-evaluation.md says why), signature = r || s;
- sealed values: SM4-GCM, 16-byte keys (sealing.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from chain.encoding import b64url, from_b64url, from_hex
from chain.errors import EncodingError
from chain.suites import sealing, sm2_openssl
from chain.suites.base import SIGNATURE_BYTES, SuiteKey, SuiteName
from chain.suites.errors import CryptoSuiteError
from chain.suites.keyfile import read_private_jwk, write_private_jwk
from chain.suites.sm2_curve import (
    PUBLIC_KEY_BYTES,
    SCALAR_BYTES,
    N,
    decode_public,
    encode_public,
    is_usable_private,
    public_point,
    sm3,
    sm3_hasher,
)

PUBLIC_KEY_CACHE = 4096  # verification keys kept loaded in OpenSSL (validators, devices, orgs)


@dataclass(frozen=True, repr=False)
class Sm2Key:
    """An SM2 private key loaded in OpenSSL with its public part; `public_hex` is 04||X||Y."""

    scalar: bytes
    public: bytes
    handle: sm2_openssl.Sm2Handle = field(compare=False)

    @property
    def public_hex(self) -> str:
        return self.public.hex()

    def __repr__(self) -> str:
        return f"Sm2Key(public_hex={self.public_hex!r})"

    def sign(self, message: bytes) -> bytes:
        der = sm2_openssl.sign_der(self.handle, message)
        return der_to_rs(der)

    def to_jwk(self) -> dict[str, str]:
        return {
            "kty": "EC",
            "crv": "SM2",
            "x": b64url(self.public[1:33]),
            "y": b64url(self.public[33:]),
            "d": b64url(self.scalar),
            "kid": self.public_hex,
        }


def key_from_scalar(d: int) -> Sm2Key:
    """The key of a private scalar, refused outside [1, n-2] (EncodingError)."""
    if not is_usable_private(d):
        raise EncodingError("an SM2 private key must lie in [1, n-2]")
    scalar, public = d.to_bytes(SCALAR_BYTES, "big"), encode_public(public_point(d))
    handle = sm2_openssl.private_handle(sm2_openssl.load(), scalar, public)
    return Sm2Key(scalar=scalar, public=public, handle=handle)


def rs_to_der(signature: bytes) -> bytes:
    """Strict DER `SEQUENCE { INTEGER r, INTEGER s }` of a 64-byte r || s."""
    body = _der_integer(signature[:32]) + _der_integer(signature[32:])
    return b"\x30" + bytes([len(body)]) + body


def _der_integer(value: bytes) -> bytes:
    minimal = value.lstrip(b"\x00") or b"\x00"
    if minimal[0] & 0x80:
        minimal = b"\x00" + minimal
    return b"\x02" + bytes([len(minimal)]) + minimal


def der_to_rs(der: bytes) -> bytes:
    """The 64-byte r || s of OpenSSL's DER signature (CryptoSuiteError if it is not one)."""
    if len(der) < 8 or der[0] != 0x30 or der[1] != len(der) - 2:
        raise CryptoSuiteError("OpenSSL returned a malformed SM2 signature")
    values, at = [], 2
    for _ in range(2):
        size = der[at + 1]
        if der[at] != 0x02 or not 1 <= size <= 33:
            raise CryptoSuiteError("OpenSSL returned a malformed SM2 signature")
        values.append(int.from_bytes(der[at + 2 : at + 2 + size], "big"))
        at += 2 + size
    if at != len(der) or not all(1 <= v < N for v in values):
        raise CryptoSuiteError("OpenSSL returned a malformed SM2 signature")
    return b"".join(v.to_bytes(32, "big") for v in values)


@lru_cache(maxsize=PUBLIC_KEY_CACHE)
def _verification_key(public: bytes) -> sm2_openssl.Sm2Handle | None:
    """A public key loaded in OpenSSL, or None when it is not a point of the curve."""
    if decode_public(public) is None:
        return None
    return sm2_openssl.public_handle(sm2_openssl.load(), public)


def _own(private: SuiteKey) -> Sm2Key:
    # Verify the key belongs to this suite
    if not isinstance(private, Sm2Key):
        raise CryptoSuiteError(f"the sm2-sm3 suite cannot use a {type(private).__name__}")
    return private


class Sm2Sm3:
    """SM3 hashes, SM2 signatures through the system OpenSSL 3, SM4-GCM at rest."""

    name: SuiteName = "sm2-sm3"
    public_key_bytes = PUBLIC_KEY_BYTES
    jws_alg = "SM2SM3"
    seal_key_bytes = sealing.SM4_KEY_BYTES
    hasher = staticmethod(sm3_hasher)

    def __init__(self) -> None:
        sm2_openssl.load()  # SuiteUnavailable now, not at the first signature

    def __repr__(self) -> str:
        return "Sm2Sm3()"

    def hash(self, data: bytes) -> bytes:
        return sm3(data)

    def generate(self) -> Sm2Key:
        return key_from_scalar(1 + secrets.randbelow(N - 2))

    def key_from_seed(self, seed: bytes) -> Sm2Key:
        if len(seed) != SCALAR_BYTES:
            raise EncodingError(f"a key seed is {SCALAR_BYTES} bytes")
        return key_from_scalar(1 + int.from_bytes(seed, "big") % (N - 2))

    def sign(self, private: SuiteKey, message: bytes) -> bytes:
        return _own(private).sign(message)

    def verify(self, public_hex: str, message: bytes, signature: bytes) -> bool:
        try:
            public = from_hex(public_hex, PUBLIC_KEY_BYTES)
        except EncodingError:
            return False
        # Verify the signature is r || s with both in [1, n-1]
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            return False
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        if not (1 <= r < N and 1 <= s < N):
            return False
        # Verify the key is a point of the curve (OpenSSL is handed only such keys)
        key = _verification_key(public)
        if key is None or not isinstance(message, bytes):
            return False
        return sm2_openssl.verify_der(key, message, rs_to_der(signature))

    def is_usable_public_key(self, public_hex: str) -> bool:
        try:
            return decode_public(from_hex(public_hex, PUBLIC_KEY_BYTES)) is not None
        except EncodingError:
            return False

    def key_from_jwk(self, jwk: dict[str, str]) -> Sm2Key:
        if jwk.get("kty") != "EC" or jwk.get("crv") != "SM2" or "d" not in jwk:
            raise EncodingError("not an SM2 private JWK (kty EC, crv SM2, d)")
        scalar = from_b64url(jwk["d"], field="d")
        if len(scalar) != SCALAR_BYTES:
            raise EncodingError(f"JWK d must be {SCALAR_BYTES} bytes")
        key = key_from_scalar(int.from_bytes(scalar, "big"))
        for name, part in (("x", key.public[1:33]), ("y", key.public[33:])):
            if name not in jwk or from_b64url(jwk[name], field=name) != part:
                raise EncodingError(f"JWK public part {name} does not match its private part d")
        if "kid" in jwk and jwk["kid"] != key.public_hex:
            raise EncodingError("JWK kid is not the key's public key hex")
        return key

    def save_key(self, private: SuiteKey, path: Path) -> None:
        write_private_jwk(_own(private).to_jwk(), path)

    def load_key(self, path: Path) -> Sm2Key:
        return self.key_from_jwk(read_private_jwk(path))

    def generate_seal_key(self) -> bytes:
        return secrets.token_bytes(sealing.SM4_KEY_BYTES)

    def seal(self, key: bytes, plaintext: bytes, associated: bytes) -> bytes:
        return sealing.seal_sm4_gcm(key, plaintext, associated)

    def open(self, key: bytes, sealed: bytes, associated: bytes) -> bytes:
        return sealing.open_sm4_gcm(key, sealed, associated)
