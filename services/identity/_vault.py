"""Encryption at rest for personal fields: AES-256-GCM under a key file in the data dir.

The key is generated on first run (mode 0600, created exclusively so two processes never race
to different keys) and never logged. Each sealed value is bound to a label (table, column, row)
as associated data, so a ciphertext copied into another row or column does not decrypt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.identity.errors import IdentityError

KEY_BYTES = 32
NONCE_BYTES = 12
VERSION = b"\x01"


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


class Vault:
    """Seal and open JSON values bound to a label."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Vault(<key hidden>)"

    def seal(self, value: Any, label: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode()
        return VERSION + nonce + self._aead.encrypt(nonce, plain, label.encode())

    def open(self, sealed: bytes, label: str) -> Any:
        if sealed[:1] != VERSION:
            raise VaultError("unknown sealed value version")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            return json.loads(self._aead.decrypt(nonce, body, label.encode()))
        except InvalidTag as exc:
            raise VaultError(f"sealed value for {label} does not open") from exc
