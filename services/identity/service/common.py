"""Hashes and times every identity feature writes the same way."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from chain.encoding import canonical


def schema_hash(schema: dict[str, Any]) -> str:
    """SHA-256 of the schema's RFC 8785 canonical JSON: what the chain holds for a type."""
    return hashlib.sha256(canonical(schema)).hexdigest()


def token_hash(token: str) -> str:
    """The anchored hash: SHA-256 of the issuer-signed JWT (an SD-JWT's part before `~`)."""
    return hashlib.sha256(token.strip().split("~", 1)[0].encode("ascii")).hexdigest()


def digest_sri(hex_digest: str) -> str:
    """A Subresource Integrity string (`sha256-<base64>`) for a hex SHA-256."""
    return "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def ms_iso(ms: int) -> str:
    return iso(datetime.fromtimestamp(ms / 1000, tz=UTC))
