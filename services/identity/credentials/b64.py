"""Base64url as JOSE and SD-JWT use it: no padding, and strict about the alphabet on input."""

from __future__ import annotations

import base64
import binascii
import re

from services.identity.errors import MalformedToken

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding, as JOSE and SD-JWT require."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url decoding: only the URL-safe alphabet, no padding."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise MalformedToken("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("not base64url") from exc
