"""Ed25519 keys: signing, verification and owner-only JWK files.

Signing and key files use `cryptography`. A signature is valid under the chain's rule, ZIP-215's
cofactored equation (chain.zip215, docs/protocol.md section 14). `verify` asks libsodium
through PyNaCl first: it verifies about twice as fast as OpenSSL here (bench/chain_core.py
measures both), releases the GIL, and accepts a subset of the rule, the subset honest signers
produce; what it refuses, chain.zip215 decides. `verify_many` checks a whole batch in one
multi-scalar multiplication (smartcity_native's `_ed25519`), halves a batch that fails until
its failure is found, and checks the last few one at a time, libsodium opening them with the
GIL released once (`_sigs`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError

from chain import zip215
from chain.encoding import b64url, from_b64url, from_hex
from chain.errors import EncodingError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# Encodings of the small-order points (and their non-canonical forms): with such a key a
# signature verifies for many messages, so nobody may register or sign with one.
SMALL_ORDER_KEYS = frozenset(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    )
)


def is_usable_public_key(public_hex: str) -> bool:
    """A well-formed Ed25519 public key that is not a small-order point."""
    try:
        raw = from_hex(public_hex, PUBLIC_KEY_BYTES)
        Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, EncodingError):
        return False
    return raw not in SMALL_ORDER_KEYS


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key with its public key in hex."""

    private: Ed25519PrivateKey
    public_hex: str

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic key from a 32-byte seed (simulations and tests only)."""
        return cls.from_private(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> SigningKey:
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(private=private, public_hex=raw.hex())

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def to_jwk(self) -> dict[str, str]:
        """The private JWK (RFC 8037 OKP) with `kid` set to the public key hex."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(bytes.fromhex(self.public_hex)),
            "d": b64url(seed),
            "kid": self.public_hex,
        }

    @classmethod
    def from_jwk(cls, jwk: dict[str, str]) -> SigningKey:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "d" not in jwk:
            raise EncodingError("not an Ed25519 private JWK (kty OKP, crv Ed25519, d)")
        key = cls.from_seed(from_b64url(jwk["d"], field="d"))
        if "x" in jwk and from_b64url(jwk["x"], field="x").hex() != key.public_hex:
            raise EncodingError("JWK public part x does not match its private part d")
        if "kid" in jwk and jwk["kid"] != key.public_hex:
            raise EncodingError("JWK kid is not the key's public key hex")
        return key


def _checkable_key(public_hex: str, signature: bytes) -> bytes | None:
    """The raw key, when the key and signature can be checked at all (a well-formed key that
    is not of small order, a signature of the right length); None refuses them unchecked."""
    if not isinstance(public_hex, str):
        return None
    try:
        raw = from_hex(public_hex, PUBLIC_KEY_BYTES)
    except (ValueError, EncodingError):
        return None
    if raw in SMALL_ORDER_KEYS or len(signature) != SIGNATURE_BYTES:
        return None
    return raw


def _exact_bytes(value: object) -> bytes | None:
    """A bytes-like value (bytes, a subclass of it, bytearray, memoryview) as plain bytes, so
    every check sees the same bytes whatever type they came in; None for anything else."""
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return None


def verify(public_hex: str, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by `public_hex` under
    the chain's rule (chain.zip215): libsodium's check first, which accepts a subset of the
    rule and is what honest signatures pass; what it refuses, the rule's own check decides."""
    message_bytes, signature_bytes = _exact_bytes(message), _exact_bytes(signature)
    if message_bytes is None or signature_bytes is None:
        return False
    raw = _checkable_key(public_hex, signature_bytes)
    if raw is None:
        return False
    try:
        crypto_sign_open(signature_bytes + message_bytes, raw)
    except (BadSignatureError, NaclValueError):
        return zip215.holds(raw, message_bytes, signature_bytes)
    return True


def _bind_batches() -> Any:
    """smartcity_native's batch check bound to PyNaCl's crypto_sign_open, or None without it."""
    try:
        from nacl._sodium import ffi, lib  # PyNaCl's cffi module: the libsodium verify() calls
        from smartcity_native import _sigs

        address = int(ffi.cast("uintptr_t", ffi.addressof(lib, "crypto_sign_open")))
    except (ImportError, AttributeError):  # not built, or a PyNaCl without that function
        return None
    _sigs.bind(address)
    return _sigs


_batches = _bind_batches()
BATCHES_IN_C = _batches is not None


BISECT_BELOW = 8  # a failing batch of this many or fewer is checked one signature at a time


def verify_many(checks: Sequence[tuple[str, bytes, bytes]]) -> list[bool]:
    """`verify` of each (public_hex, message, signature), same answers. The key and length
    checks are verify's; then the whole batch is checked in one multiplication
    (chain.zip215.batch_holds, the GIL released), about a quarter of libsodium's cost a
    signature. A batch that fails is halved until its failure is found (`_failed_batch`), so a
    forgery among good signatures costs a few more batch checks, not one check of each."""
    answers = [False] * len(checks)
    items: list[tuple[bytes, bytes, bytes]] = []
    where: list[int] = []
    for i, (public_hex, message, signature) in enumerate(checks):
        if type(message) is not bytes or type(signature) is not bytes:
            answers[i] = verify(public_hex, message, signature)  # whatever verify makes of it
            continue
        raw = _checkable_key(public_hex, signature)
        if raw is None:
            continue
        items.append((raw, message, signature))
        where.append(i)
    if len(items) > 1 and zip215.batches_in_c:
        found = [True] * len(items) if zip215.batch_holds(items) else _failed_batch(items)
    else:
        found = _one_by_one(items)
    for i, good in zip(where, found, strict=True):
        answers[i] = good
    return answers


def _failed_batch(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """The answers for a batch that failed as a whole. Its left half is checked as a batch:
    if it holds, the failure is in the right half, which is split in turn without a check of
    its own; if not, the right half is checked too. Where both halves fail (forgeries in each,
    perhaps many) or the batch is small, each signature is checked on its own, as before
    batches."""
    if len(items) <= BISECT_BELOW:
        return _one_by_one(items)
    half = len(items) // 2
    left, right = items[:half], items[half:]
    if zip215.batch_holds(left):
        return [True] * len(left) + _failed_batch(right)
    if zip215.batch_holds(right):
        return _failed_batch(left) + [True] * len(right)
    return _one_by_one(items)


def _one_by_one(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """`verify` of each: libsodium opens them all with the GIL released once (one GIL
    take-back per signature left a busy node's verification pool mostly waiting), and what it
    refuses, the rule's own check decides."""
    if _batches is None:
        return [verify(raw.hex(), message, signature) for raw, message, signature in items]
    opened = _batches.open_many(
        [raw for raw, _, _ in items], [signature + message for _, message, signature in items]
    )
    return [
        o == 1 or zip215.holds(raw, message, signature)
        for o, (raw, message, signature) in zip(opened, items, strict=True)
    ]


def verify_with_openssl(public_hex: str, message: bytes, signature: bytes) -> bool:
    """The same check through `cryptography` (OpenSSL): the benchmarks compare the two."""
    try:
        raw = from_hex(public_hex, PUBLIC_KEY_BYTES)
        if raw in SMALL_ORDER_KEYS:
            return False
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except (InvalidSignature, ValueError, EncodingError):
        return False
    return True


def save_key(key: SigningKey, path: Path) -> None:
    """Write a private JWK readable only by its owner (mode 0600), refusing to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key.to_jwk(), handle)


def load_key(path: Path) -> SigningKey:
    """Read a private JWK file, refusing one that others can read."""
    mode = path.stat().st_mode & 0o077
    if mode:
        raise EncodingError(f"{path} is readable by others (mode {oct(mode)}): chmod 600 it")
    return SigningKey.from_jwk(json.loads(path.read_text()))
