"""Encryption at rest for personal fields: the chain suite's AEAD under a key file in the data dir.

On the default chain AES-256-GCM under the file's 32-byte key; on an sm2-sm3 chain SM4-GCM
(chain.suites.sealing, version byte 0x02) under a 16-byte key derived from the same file,
HKDF-SM3(key, salt none, info SM4_KEY_INFO) (RFC 5869 with SM3): one key file either way, and
the SM4 key is never stored. The key is generated on first run (mode 0600, created exclusively
so two processes never race to different keys) and never logged. Each sealed value is bound to
a label (table, column, row) as associated data, so a ciphertext copied into another row or
column does not decrypt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chain.suites import DEFAULT_SUITE, CryptoSuite, CryptoSuiteError, suite_for
from services.identity.errors import IdentityError

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"
SM4_KEY_INFO = b"smartcity identity vault SM4-GCM key"


class VaultError(IdentityError):
    """A sealed value cannot be opened (wrong key, tampered, or moved to another row)."""

    status, code = 500, "vault_error"


def load_or_create_key(path: Path) -> bytes:
    """Read the data key, creating it with mode 0600 on first run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise VaultError(f"the data key file {path} is not {KEY_BYTES} bytes") from None
        return key
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def sm4_key(key: bytes) -> bytes:
    """The 16-byte SM4-GCM key of an sm2-sm3 chain's vault, derived from the 32-byte key file."""
    return HKDF(algorithm=hashes.SM3(), length=16, salt=None, info=SM4_KEY_INFO).derive(key)


class Vault:
    """Seal and open JSON values bound to a label, with the chain suite's AEAD."""

    def __init__(self, key: bytes, crypto: str = DEFAULT_SUITE) -> None:
        # The cipher is chosen once here: the default path is AES-256-GCM as it always was
        if crypto == DEFAULT_SUITE:
            self._aead = AESGCM(key)
            self._seal: Callable[[bytes, bytes], bytes] = self._seal_aes
            self._open: Callable[[bytes, bytes, str], bytes] = self._open_aes
        else:
            self._suite: CryptoSuite = suite_for(crypto)
            self._key = sm4_key(key)
            self._seal, self._open = self._seal_suite, self._open_suite

    def __repr__(self) -> str:
        return "Vault(<key hidden>)"

    def seal(self, value: Any, label: str) -> bytes:
        plain = json.dumps(value, separators=(",", ":")).encode()
        return self._seal(plain, label.encode())

    def open(self, sealed: bytes, label: str) -> Any:
        return json.loads(self._open(sealed, label.encode(), label))

    def _seal_aes(self, plain: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plain, associated)

    def _open_aes(self, sealed: bytes, associated: bytes, label: str) -> bytes:
        if sealed[:1] != VERSION:
            raise VaultError("unknown sealed value version")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, associated)
        except InvalidTag as exc:
            raise VaultError(f"sealed value for {label} does not open") from exc

    def _seal_suite(self, plain: bytes, associated: bytes) -> bytes:
        return self._suite.seal(self._key, plain, associated)

    def _open_suite(self, sealed: bytes, associated: bytes, label: str) -> bytes:
        try:
            return self._suite.open(self._key, sealed, associated)
        except CryptoSuiteError as exc:
            raise VaultError(f"sealed value for {label} does not open: {exc}") from exc
