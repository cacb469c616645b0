"""The default suite: SHA-256 and Ed25519, today's bytes (chain/crypto.py, chain/encoding.py).

Key file: the private JWK of RFC 8037 (`{"kty":"OKP","crv":"Ed25519","x","d","kid"}`, kid =
public key hex). Public key: 32 raw bytes, lowercase hex. Sealing: AES-256-GCM (sealing.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from chain import crypto
from chain.encoding import sha256
from chain.suites import sealing
from chain.suites.base import SuiteKey, SuiteName
from chain.suites.errors import CryptoSuiteError


def _own(private: SuiteKey) -> crypto.SigningKey:
    # Verify the key belongs to this suite
    if not isinstance(private, crypto.SigningKey):
        raise CryptoSuiteError(f"the ed25519-sha256 suite cannot use a {type(private).__name__}")
    return private


class Ed25519Sha256:
    """SHA-256 hashes, Ed25519 signatures verified with libsodium, AES-256-GCM at rest."""

    name: SuiteName = "ed25519-sha256"
    public_key_bytes = crypto.PUBLIC_KEY_BYTES
    jws_alg = "EdDSA"
    seal_key_bytes = sealing.AES_KEY_BYTES
    hasher = staticmethod(hashlib.sha256)
    # chain.crypto's function itself, not a wrapper: the default suite costs no extra call
    verify = staticmethod(crypto.verify)

    def __repr__(self) -> str:
        return "Ed25519Sha256()"

    def hash(self, data: bytes) -> bytes:
        return sha256(data)

    def generate(self) -> crypto.SigningKey:
        return crypto.SigningKey.generate()

    def key_from_seed(self, seed: bytes) -> crypto.SigningKey:
        return crypto.SigningKey.from_seed(seed)

    def sign(self, private: SuiteKey, message: bytes) -> bytes:
        return _own(private).sign(message)

    def is_usable_public_key(self, public_hex: str) -> bool:
        return crypto.is_usable_public_key(public_hex)

    def key_from_jwk(self, jwk: dict[str, str]) -> crypto.SigningKey:
        return crypto.SigningKey.from_jwk(jwk)

    def save_key(self, private: SuiteKey, path: Path) -> None:
        crypto.save_key(_own(private), path)

    def load_key(self, path: Path) -> crypto.SigningKey:
        return crypto.load_key(path)

    def generate_seal_key(self) -> bytes:
        return os.urandom(sealing.AES_KEY_BYTES)

    def seal(self, key: bytes, plaintext: bytes, associated: bytes) -> bytes:
        return sealing.seal_aes_gcm(key, plaintext, associated)

    def open(self, key: bytes, sealed: bytes, associated: bytes) -> bytes:
        return sealing.open_aes_gcm(key, sealed, associated)
