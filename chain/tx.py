"""Signed transactions: their shape, signing bytes, hash and the door checks that need no state."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from chain.crypto import SIGNATURE_BYTES, SigningKey, verify
from chain.encoding import canonical, from_hex, parse_json
from chain.errors import EncodingError, TxRejected
from chain.types import PublicKey, TxHash

TX_DOMAIN = b"smartcity/tx/v1\n"
MAX_TX_BYTES = 64 * 1024
MAX_NONCE = 2**53 - 1
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELDS = {"chain_id", "sender", "contract", "method", "args", "nonce", "expiry_height", "sig"}


@dataclass(frozen=True, eq=False)
class Tx:
    chain_id: str
    sender: PublicKey
    contract: str
    method: str
    args: dict[str, Any]
    nonce: int
    expiry_height: int
    sig: str

    def body(self) -> dict[str, Any]:
        """Every field but the signature."""
        return {
            "chain_id": self.chain_id,
            "sender": self.sender,
            "contract": self.contract,
            "method": self.method,
            "args": self.args,
            "nonce": self.nonce,
            "expiry_height": self.expiry_height,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.sig}

    def encode(self) -> bytes:
        """Canonical bytes of the signed transaction: its Merkle leaf."""
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        return canonical(self.to_json())

    @cached_property
    def hash(self) -> TxHash:
        return TxHash(hashlib.sha256(self._encoded).hexdigest())

    def signed_bytes(self) -> bytes:
        return signing_bytes(self.body())

    def has_valid_signature(self) -> bool:
        return verify(self.sender, self.signed_bytes(), bytes.fromhex(self.sig))


def signing_bytes(body: dict[str, Any]) -> bytes:
    """The message a sender signs: a domain tag then the canonical body."""
    return TX_DOMAIN + canonical(body)


def sign_tx(
    key: SigningKey,
    *,
    chain_id: str,
    contract: str,
    method: str,
    args: dict[str, Any],
    expiry_height: int,
    nonce: int | None = None,
) -> Tx:
    """Build and sign a transaction; a random nonce keeps identical calls distinct."""
    body = {
        "chain_id": chain_id,
        "sender": key.public_hex,
        "contract": contract,
        "method": method,
        "args": args,
        "nonce": secrets.randbelow(MAX_NONCE) if nonce is None else nonce,
        "expiry_height": expiry_height,
    }
    sig = key.sign(signing_bytes(body)).hex()
    return tx_from_json({**body, "sig": sig})


def decode_tx(raw: bytes) -> Tx:
    """Parse and shape-check a transaction from the wire."""
    # Verify the size before parsing anything
    if len(raw) > MAX_TX_BYTES:
        raise TxRejected("tx_too_large", f"{len(raw)} bytes exceeds {MAX_TX_BYTES}", status=413)
    try:
        value = parse_json(raw)
    except EncodingError as exc:
        raise TxRejected("tx_malformed", str(exc)) from exc
    return tx_from_json(value)


def tx_from_json(value: Any) -> Tx:
    """A transaction from its JSON object, refusing any field of the wrong shape."""
    if not isinstance(value, dict):
        raise TxRejected("tx_malformed", "a transaction is a JSON object")
    missing, extra = _FIELDS - value.keys(), value.keys() - _FIELDS
    if missing or extra:
        raise TxRejected(
            "tx_malformed", f"missing fields {sorted(missing)}, unknown fields {sorted(extra)}"
        )
    for name in ("chain_id", "sender", "contract", "method", "sig"):
        if not isinstance(value[name], str):
            raise TxRejected("tx_malformed", f"{name} must be a string")
    for name, top in (("nonce", MAX_NONCE), ("expiry_height", MAX_NONCE)):
        field = value[name]
        if not isinstance(field, int) or isinstance(field, bool) or not 0 <= field <= top:
            raise TxRejected("tx_malformed", f"{name} must be an integer in 0..{top}")
    if not isinstance(value["args"], dict):
        raise TxRejected("tx_malformed", "args must be a JSON object")
    for name in ("contract", "method"):
        if not _NAME.fullmatch(value[name]):
            raise TxRejected("tx_malformed", f"{name} must match {_NAME.pattern}")
    try:
        from_hex(value["sender"], 32, field="sender")
        from_hex(value["sig"], SIGNATURE_BYTES, field="sig")
    except EncodingError as exc:
        raise TxRejected("tx_malformed", str(exc)) from exc
    try:
        # The canonical form is what everyone signs and hashes; execute exactly that (so 3.0
        # and 3, which canonicalise alike, can never run differently on two nodes).
        args = json.loads(canonical(value["args"]))
        tx = Tx(**{**value, "args": args})
        encoded = tx.encode()
    except EncodingError as exc:
        raise TxRejected("tx_malformed", str(exc)) from exc
    if len(encoded) > MAX_TX_BYTES:
        raise TxRejected("tx_too_large", f"canonical form exceeds {MAX_TX_BYTES} bytes", status=413)
    return tx
