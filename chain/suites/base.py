"""What every crypto suite provides: one hash, one signature scheme, key files, sealing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

SuiteName = Literal["ed25519-sha256", "sm2-sm3"]
SUITE_NAMES: tuple[SuiteName, ...] = ("ed25519-sha256", "sm2-sm3")
DEFAULT_SUITE: SuiteName = "ed25519-sha256"
HASH_BYTES = 32
SIGNATURE_BYTES = 64


class Digest(Protocol):
    """A running hash, as hashlib makes them."""

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


Hasher = Callable[[bytes], Digest]
"""A hash constructor as hashlib's (`hashlib.sha256`): hot loops call it directly."""


class Verifier(Protocol):
    """A suite's signature check, as chain.consensus and chain.block take it."""

    def __call__(self, public_hex: str, message: bytes, signature: bytes) -> bool: ...


class SuiteKey(Protocol):
    """A private signing key of one suite, with its public key as lowercase hex."""

    @property
    def public_hex(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...

    def to_jwk(self) -> dict[str, str]: ...


class CryptoSuite(Protocol):
    """The chain's hash and signature scheme, chosen once in the genesis.

    `verify` never raises on a malformed key or signature: it answers False. Keys of another
    suite given to `sign` or `save_key` raise CryptoSuiteError; malformed key files raise
    EncodingError. Implementations are stateless (or hold thread-safe caches): one instance
    serves every thread.
    """

    @property
    def name(self) -> SuiteName: ...

    @property
    def public_key_bytes(self) -> int:
        """Length of a raw public key: 32 (Ed25519) or 65 (SM2, 04||X||Y)."""
        ...

    @property
    def jws_alg(self) -> str:
        """The JWS `alg` of this suite's signatures: EdDSA, or SM2SM3 (unregistered)."""
        ...

    @property
    def seal_key_bytes(self) -> int:
        """Length of a key for `seal` and `open`."""
        ...

    @property
    def hasher(self) -> Hasher:
        """The suite's hash as a hashlib-style constructor: `hasher(data).digest()`."""
        ...

    def hash(self, data: bytes) -> bytes:
        """The suite's 32-byte digest of `data`."""
        ...

    def generate(self) -> SuiteKey: ...

    def key_from_seed(self, seed: bytes) -> SuiteKey:
        """A deterministic key from 32 bytes (simulations and tests only)."""
        ...

    def sign(self, private: SuiteKey, message: bytes) -> bytes:
        """A 64-byte signature of `message` (SM2: r||s, randomised)."""
        ...

    def verify(self, public_hex: str, message: bytes, signature: bytes) -> bool:
        """True only for a valid signature by a usable key; never raises on bad input."""
        ...

    def is_usable_public_key(self, public_hex: str) -> bool:
        """A public key this suite would verify against (well formed, on the curve, not weak)."""
        ...

    def key_from_jwk(self, jwk: dict[str, str]) -> SuiteKey: ...

    def save_key(self, private: SuiteKey, path: Path) -> None:
        """Write the private JWK, owner-only (0600), refusing to overwrite."""
        ...

    def load_key(self, path: Path) -> SuiteKey:
        """Read a private JWK file, refusing one that others can read."""
        ...

    def generate_seal_key(self) -> bytes: ...

    def seal(self, key: bytes, plaintext: bytes, associated: bytes) -> bytes:
        """Authenticated encryption at rest, bound to `associated` (e.g. table:column:row)."""
        ...

    def open(self, key: bytes, sealed: bytes, associated: bytes) -> bytes:
        """The plaintext of `seal`; CryptoSuiteError if tampered, moved or of another suite."""
        ...
