"""Private JWK files: owner-only, never overwritten, refused when others can read them.

The same rules as chain/crypto.py's Ed25519 key files, for suites whose key type is not
chain.crypto.SigningKey.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chain.encoding import parse_json
from chain.errors import EncodingError


def write_private_jwk(jwk: dict[str, str], path: Path) -> None:
    """Write `jwk` with mode 0600, refusing to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(jwk, handle)


def read_private_jwk(path: Path) -> dict[str, str]:
    """The JWK object of a key file whose mode lets only its owner read it."""
    mode = path.stat().st_mode & 0o077
    if mode:
        raise EncodingError(f"{path} is readable by others (mode {oct(mode)}): chmod 600 it")
    value: Any = parse_json(path.read_bytes())
    # Verify it is an object of strings, as a private JWK is
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise EncodingError(f"{path} is not a JWK (a JSON object of strings)")
    return value
