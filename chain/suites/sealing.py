"""Encryption at rest: one framing, two AEADs.

A sealed value is `version (1 byte) || nonce (12 random bytes) || ciphertext || tag (16)`,
with the caller's label (table, column, row) as associated data, so a value copied elsewhere
does not open. Version 0x01 is AES-256-GCM: the default suite's, byte for byte the identity
vault's format (services/identity/vault.py), so what is sealed today opens through the suite.
Version 0x02 is SM4-GCM (RFC 8998's mode; GB/T 32907 cipher, 128-bit key): the SM suite's.
Random 96-bit nonces: rotate a key well before 2^32 values.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chain.suites.errors import CryptoSuiteError

NONCE_BYTES = 12
TAG_BYTES = 16
AES_GCM_VERSION = b"\x01"
SM4_GCM_VERSION = b"\x02"
AES_KEY_BYTES = 32
SM4_KEY_BYTES = 16
_NAMES = {AES_GCM_VERSION: "AES-256-GCM", SM4_GCM_VERSION: "SM4-GCM"}


def _check_key(key: bytes, size: int, version: bytes) -> None:
    # Verify the key is the cipher's length
    if len(key) != size:
        raise CryptoSuiteError(f"{_NAMES[version]} takes a {size}-byte key, got {len(key)}")


def _split(sealed: bytes, version: bytes) -> tuple[bytes, bytes]:
    """The nonce and the ciphertext-with-tag of a sealed value of `version`."""
    # Verify the value was sealed by this suite's cipher
    if sealed[:1] != version:
        found = _NAMES.get(sealed[:1], f"unknown version {sealed[:1].hex() or 'none'}")
        raise CryptoSuiteError(f"sealed value is {found}, this suite opens {_NAMES[version]}")
    # Verify it is long enough to hold a nonce and a tag
    if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES:
        raise CryptoSuiteError("sealed value is truncated")
    return sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]


def seal_aes_gcm(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    _check_key(key, AES_KEY_BYTES, AES_GCM_VERSION)
    nonce = os.urandom(NONCE_BYTES)
    return AES_GCM_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_aes_gcm(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    _check_key(key, AES_KEY_BYTES, AES_GCM_VERSION)
    nonce, body = _split(sealed, AES_GCM_VERSION)
    try:
        return AESGCM(key).decrypt(nonce, body, associated)
    except InvalidTag as exc:
        raise CryptoSuiteError("sealed value does not open (wrong key, tampered or moved)") from exc


def seal_sm4_gcm(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    _check_key(key, SM4_KEY_BYTES, SM4_GCM_VERSION)
    nonce = os.urandom(NONCE_BYTES)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(associated)
    body = encryptor.update(plaintext) + encryptor.finalize()
    return SM4_GCM_VERSION + nonce + body + encryptor.tag


def open_sm4_gcm(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    _check_key(key, SM4_KEY_BYTES, SM4_GCM_VERSION)
    nonce, body = _split(sealed, SM4_GCM_VERSION)
    ciphertext, tag = body[:-TAG_BYTES], body[-TAG_BYTES:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(associated)
    try:
        return decryptor.update(ciphertext) + decryptor.finalize()
    except InvalidTag as exc:
        raise CryptoSuiteError("sealed value does not open (wrong key, tampered or moved)") from exc
