"""W3C Bitstring Status List v1.0: revocation and suspension bits, GZIP + multibase base64url.

Index 0 is the most significant bit of the first byte. Lists have at least 131,072 entries (the
spec's 16 KB floor, for herd privacy); an entry may span `status_size` bits (purpose "message").
Compression uses a fixed GZIP header (mtime 0), so equal lists encode to equal strings on every
node and the encoded list can be hashed into chain state.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.identity.credentials.jose import b64url_decode, b64url_encode
from services.identity.errors import MalformedToken, StatusListError

MIN_ENTRIES = 131_072
MAX_BITS = 1 << 27  # 16 MiB decompressed: refuse gzip bombs
PURPOSES = frozenset({"revocation", "suspension", "refresh", "message"})
VC_CONTEXT_V2 = "https://www.w3.org/ns/credentials/v2"
ENTRY_TYPE = "BitstringStatusListEntry"
LIST_TYPE = "BitstringStatusList"
CREDENTIAL_TYPE = "BitstringStatusListCredential"


class StatusList:
    """A fixed-size bitstring of status entries of `status_size` bits each."""

    def __init__(
        self, entries: int = MIN_ENTRIES, *, status_size: int = 1, raw: bytes | None = None
    ) -> None:
        if status_size < 1 or entries < MIN_ENTRIES:
            raise StatusListError(f"a status list needs at least {MIN_ENTRIES} entries")
        bits = entries * status_size
        if bits > MAX_BITS:
            raise StatusListError("status list too large")
        self.entries = entries
        self.status_size = status_size
        self._bytes = bytearray(raw) if raw is not None else bytearray((bits + 7) // 8)
        if len(self._bytes) != (bits + 7) // 8:
            raise StatusListError("raw bitstring has the wrong length")

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.entries:
            raise StatusListError(f"status index {index} is outside 0..{self.entries - 1}")

    def get(self, index: int) -> int:
        """The status value at `index` (0 or 1 when status_size is 1)."""
        self._check_index(index)
        value = 0
        for bit in range(index * self.status_size, (index + 1) * self.status_size):
            value = (value << 1) | (self._bytes[bit // 8] >> (7 - bit % 8)) & 1
        return value

    def set(self, index: int, value: int = 1) -> None:
        """Set the status value at `index` (1 = revoked/suspended for those purposes)."""
        self._check_index(index)
        if not 0 <= value < 1 << self.status_size:
            raise StatusListError(f"status value {value} does not fit {self.status_size} bit(s)")
        for offset in range(self.status_size):
            bit = index * self.status_size + offset
            mask = 1 << (7 - bit % 8)
            if (value >> (self.status_size - 1 - offset)) & 1:
                self._bytes[bit // 8] |= mask
            else:
                self._bytes[bit // 8] &= ~mask & 0xFF

    def to_bytes(self) -> bytes:
        """The uncompressed bitstring."""
        return bytes(self._bytes)

    def digest(self) -> str:
        """sha-256 hex of the uncompressed bitstring, for anchoring the list's state."""
        return hashlib.sha256(self._bytes).hexdigest()

    def encode(self) -> str:
        """`encodedList`: 'u' + base64url(no padding) of GZIP(bitstring)."""
        return "u" + b64url_encode(gzip.compress(bytes(self._bytes), compresslevel=9, mtime=0))

    @classmethod
    def decode(cls, encoded: str, *, status_size: int = 1) -> StatusList:
        """Parse an `encodedList`, enforcing the multibase prefix and the 16 KB floor."""
        if not isinstance(encoded, str) or not encoded.startswith("u"):
            raise StatusListError("encodedList must be multibase base64url ('u' prefix)")
        try:
            compressed = b64url_decode(encoded[1:])
            inflater = zlib.decompressobj(wbits=31)  # 31 = GZIP container
            raw = inflater.decompress(compressed, MAX_BITS // 8 + 1)
        except (MalformedToken, zlib.error) as exc:
            raise StatusListError("encodedList is not GZIP base64url") from exc
        if len(raw) > MAX_BITS // 8 or not inflater.eof:
            raise StatusListError("encodedList is too large or truncated")
        entries = len(raw) * 8 // status_size
        if entries < MIN_ENTRIES:
            raise StatusListError(f"status list shorter than {MIN_ENTRIES} entries")
        if entries * status_size != len(raw) * 8:
            raise StatusListError("bitstring length is not a multiple of statusSize")
        return cls(entries, status_size=status_size, raw=raw)


def status_entry(
    *, list_credential: str, index: int, purpose: str, status_size: int = 1
) -> dict[str, Any]:
    """A `credentialStatus` value pointing at one entry of a status list credential."""
    if purpose not in PURPOSES:
        raise StatusListError(f"unknown status purpose {purpose!r}")
    entry: dict[str, Any] = {
        "id": f"{list_credential}#{index}",
        "type": ENTRY_TYPE,
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": list_credential,
    }
    if status_size != 1:
        entry["statusSize"] = status_size
    return entry


def status_list_credential(
    *, list_id: str, issuer: str, purpose: str, status_list: StatusList, valid_from: str
) -> dict[str, Any]:
    """The unsigned BitstringStatusListCredential publishing `status_list`."""
    if purpose not in PURPOSES:
        raise StatusListError(f"unknown status purpose {purpose!r}")
    return {
        "@context": [VC_CONTEXT_V2],
        "id": list_id,
        "type": ["VerifiableCredential", CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": f"{list_id}#list",
            "type": LIST_TYPE,
            "statusPurpose": purpose,
            "encodedList": status_list.encode(),
        },
    }


@dataclass(frozen=True)
class StatusResult:
    """The status a verifier read: `is_set` means revoked/suspended for those purposes."""

    purpose: str
    value: int

    @property
    def is_set(self) -> bool:
        """True when the entry's bits are not all zero."""
        return self.value != 0


def check_status(entry: Mapping[str, Any], list_credential: Mapping[str, Any]) -> StatusResult:
    """Read a credential's status from an (already verified) status list credential."""
    if entry.get("type") != ENTRY_TYPE:
        raise StatusListError(f"credentialStatus type must be {ENTRY_TYPE}")
    if entry.get("statusListCredential") != list_credential.get("id"):
        raise StatusListError("the status list credential is not the one the entry names")
    subject = list_credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != LIST_TYPE:
        raise StatusListError(f"credentialSubject must be a {LIST_TYPE}")
    # Verify the list is published for the purpose the entry asks about
    if subject.get("statusPurpose") != entry.get("statusPurpose"):
        raise StatusListError("the entry's statusPurpose does not match the list's")
    index_text = entry.get("statusListIndex")
    if not isinstance(index_text, str) or not index_text.isdigit():
        raise StatusListError("statusListIndex must be a string of digits")
    size = entry.get("statusSize", 1)
    if not isinstance(size, int) or size < 1:
        raise StatusListError("statusSize must be a positive integer")
    status_list = StatusList.decode(subject.get("encodedList", ""), status_size=size)
    return StatusResult(purpose=str(entry["statusPurpose"]), value=status_list.get(int(index_text)))
