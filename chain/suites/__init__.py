"""Crypto suites: the chain's one hash and one signature scheme, chosen in the genesis.

    suite = suite_for(genesis_crypto)        # "ed25519-sha256" (default) or "sm2-sm3"
    suite.hash(data); suite.sign(key, message); suite.verify(public_hex, message, signature)

`ed25519-sha256` is today's bytes (SHA-256, Ed25519, AES-256-GCM at rest; ed25519_sha256.py).
`sm2-sm3` is China's national suite (SM3, SM2 with the default ID, SM4-GCM; sm2_sm3.py), its
signatures through the system OpenSSL 3: where that library is missing, asking for the suite
raises SuiteUnavailable saying what to install, and the default suite works regardless.
Suites are stateless and thread-safe: `suite_for` returns one shared instance per name.

Errors (errors.py): CryptoSuiteError and SuiteUnavailable under chain.errors.ChainError;
malformed key material is chain.errors.EncodingError, as in chain/crypto.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

from chain.suites.base import (
    DEFAULT_SUITE,
    HASH_BYTES,
    SIGNATURE_BYTES,
    SUITE_NAMES,
    CryptoSuite,
    SuiteKey,
    SuiteName,
)
from chain.suites.ed25519_sha256 import Ed25519Sha256
from chain.suites.errors import CryptoSuiteError, SuiteUnavailable
from chain.suites.keyfile import read_private_jwk

__all__ = [
    "DEFAULT_SUITE",
    "HASH_BYTES",
    "SIGNATURE_BYTES",
    "SUITE_NAMES",
    "CryptoSuite",
    "CryptoSuiteError",
    "SuiteKey",
    "SuiteName",
    "SuiteUnavailable",
    "load_any_key",
    "suite_for",
]

_lock = threading.Lock()
_suites: dict[str, CryptoSuite] = {}


def suite_for(name: str) -> CryptoSuite:
    """The suite a genesis names; SuiteUnavailable for an unknown name or a missing library."""
    with _lock:
        suite = _suites.get(name)
        if suite is None:
            suite = _suites[name] = _make(name)
        return suite


def _make(name: str) -> CryptoSuite:
    if name == "ed25519-sha256":
        return Ed25519Sha256()
    if name == "sm2-sm3":
        from chain.suites.sm2_sm3 import Sm2Sm3  # loads libcrypto: only when asked for

        return Sm2Sm3()
    raise SuiteUnavailable(
        f"unknown crypto suite {name!r}: a genesis names one of {', '.join(SUITE_NAMES)}"
    )


def load_any_key(path: Path) -> SuiteKey:
    """A private key file of either suite, told apart by its JWK curve (Ed25519 or SM2).

    The file rules are each suite's (owner-only, JWK checked); EncodingError for anything else.
    """
    from chain.errors import EncodingError

    curve = read_private_jwk(path).get("crv")
    if curve == "SM2":
        return suite_for("sm2-sm3").load_key(path)
    if curve == "Ed25519":
        return suite_for("ed25519-sha256").load_key(path)
    raise EncodingError(f"{path} is neither an Ed25519 nor an SM2 private JWK (crv {curve!r})")
