"""Signed transactions: their shape, signing bytes, hash and the door checks that need no state."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import orjson

from chain.crypto import SIGNATURE_BYTES, verify, verify_many
from chain.encoding import (
    canonical,
    canonical_value,
    from_hex,
    parse_json,
    read_canonical_object,
)
from chain.errors import EncodingError, TxRejected
from chain.suites import SuiteKey, SuiteName, SuiteUnavailable, suite_for
from chain.suites.sm2_curve import sm3_hasher
from chain.types import PublicKey, TxHash

TX_DOMAIN = b"smartcity/tx/v1\n"
MAX_TX_BYTES = 64 * 1024
MAX_NONCE = 2**53 - 1
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FIELDS = {"chain_id", "sender", "contract", "method", "args", "nonce", "expiry_height", "sig"}
# "sig" sorts last of the fields, so the canonical signed tx is the canonical body + this tail
_SIG_TAIL_BYTES = len(b',"sig":""}') + 2 * SIGNATURE_BYTES


@dataclass(frozen=True, eq=False)
class Tx:
    """A signed transaction of the default suite: SHA-256 id, Ed25519 signature.

    A transaction's suite is named by its sender key (32 bytes Ed25519, 65 bytes SM2): the
    decoders below make an SmTx for an SM2 sender, and a ledger refuses either kind on a
    chain of the other suite. Each class binds its hash and verifier once: no dispatch per call.
    """

    suite: ClassVar[SuiteName] = "ed25519-sha256"
    _hasher: ClassVar[Any] = staticmethod(hashlib.sha256)
    _verify: ClassVar[Any] = staticmethod(verify)

    chain_id: str
    sender: PublicKey
    contract: str
    method: str
    args: dict[str, Any]
    nonce: int
    expiry_height: int
    sig: str

    def __init__(
        self,
        chain_id: str,
        sender: PublicKey,
        contract: str,
        method: str,
        args: dict[str, Any],
        nonce: int,
        expiry_height: int,
        sig: str,
    ) -> None:
        # The frozen dataclass's own __init__ sets one field at a time through
        # object.__setattr__; each node makes one Tx per transaction, so in one step
        self.__dict__.update(
            chain_id=chain_id,
            sender=sender,
            contract=contract,
            method=method,
            args=args,
            nonce=nonce,
            expiry_height=expiry_height,
            sig=sig,
        )

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
        return TxHash(self._hasher(self._encoded).hexdigest())

    def signed_bytes(self) -> bytes:
        """TX_DOMAIN + canonical(body): cut from the encoded tx rather than encoded again."""
        return TX_DOMAIN + self._encoded[:-_SIG_TAIL_BYTES] + b"}"

    def has_valid_signature(self) -> bool:
        """Checked once per process: the hash binds body and signature, so a verified hash
        stays verified (in-process validators share this work)."""
        digest = self.hash
        if digest in VERIFIED:
            return True
        if digest in REFUSED:  # the same hash is the same body and signature: refused again
            return False
        good: bool = self._verify(self.sender, self.signed_bytes(), bytes.fromhex(self.sig))
        (VERIFIED if good else REFUSED).add(digest)
        return good


def _sm2_verify(public_hex: str, message: bytes, signature: bytes) -> bool:
    try:
        suite = suite_for("sm2-sm3")
    except SuiteUnavailable:  # no OpenSSL 3 here: no SM2 signature can be shown valid
        return False
    return suite.verify(public_hex, message, signature)


@dataclass(frozen=True, eq=False)
class SmTx(Tx):
    """A transaction of the sm2-sm3 suite: SM3 id, SM2 signature (sender 04 || X || Y)."""

    suite: ClassVar[SuiteName] = "sm2-sm3"
    _hasher: ClassVar[Any] = staticmethod(sm3_hasher)
    _verify: ClassVar[Any] = staticmethod(_sm2_verify)


# A sender key's hex length names its transaction's suite
_KINDS: dict[int, type[Tx]] = {64: Tx, 130: SmTx}
_KEY_NAMES = {"ed25519-sha256": "an Ed25519 key", "sm2-sm3": "an SM2 key"}


def wrong_suite(tx: Tx, chain_suite: str) -> str:
    """Why a chain of `chain_suite` refuses `tx`, naming both suites."""
    return (
        f"the sender is {_KEY_NAMES[tx.suite]} (suite {tx.suite}); this chain's genesis"
        f" names the {chain_suite} suite"
    )


class SignatureCache:
    """Hashes of the transactions whose signatures this process verified, oldest evicted."""

    def __init__(self, capacity: int = 500_000) -> None:
        self.capacity = capacity
        # An OrderedDict drops its oldest entry at once; a dict emptied from the front skips
        # every slot it already emptied, until it resizes: once full, each add cost 57 us
        self._hashes: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, digest: str) -> bool:
        return digest in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, digest: str) -> None:
        with self._lock:
            self._hashes[digest] = None
            while len(self._hashes) > self.capacity:
                self._hashes.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._hashes.clear()


VERIFIED = SignatureCache()
# Hashes whose signatures failed: a forgery sent again, or checked again by the door's
# check_tx after its batch, costs a look-up, not a second check
REFUSED = SignatureCache(capacity=100_000)
_POOL_MIN_BATCH = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _verify_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="tx-verify"
            )
        return _pool


def verify_signatures(txs: Sequence[Tx]) -> list[bool]:
    """Check many signatures, on every core for large batches (libsodium releases the GIL);
    the verified ones are remembered, so a later `has_valid_signature` costs a set look-up.
    Each signature not already verified is checked once (a forged one too)."""
    todo = list(
        {tx.hash: tx for tx in txs if tx.hash not in VERIFIED and tx.hash not in REFUSED}.values()
    )
    if len(todo) >= _POOL_MIN_BATCH:
        workers = max(2, os.cpu_count() or 1)
        size = -(-len(todo) // workers)
        chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
        answers = [good for part in _verify_pool().map(_verify_chunk, chunks) for good in part]
    else:
        answers = _verify_chunk(todo)
    refused = {tx.hash for tx, good in zip(todo, answers, strict=True) if not good}
    return [tx.hash not in refused and tx.hash not in REFUSED for tx in txs]


def _verify_chunk(txs: Sequence[Tx]) -> list[bool]:
    """Each transaction's answer: Ed25519 ones in one batch (the GIL released once for all),
    others one by one; the good ones are remembered."""
    answers = [tx._verify is not verify and tx.has_valid_signature() for tx in txs]
    batch = [i for i, tx in enumerate(txs) if tx._verify is verify]
    checks = [(txs[i].sender, txs[i].signed_bytes(), bytes.fromhex(txs[i].sig)) for i in batch]
    for i, good in zip(batch, verify_many(checks), strict=True):
        answers[i] = good
        (VERIFIED if good else REFUSED).add(txs[i].hash)
    return answers


def signing_bytes(body: dict[str, Any]) -> bytes:
    """The message a sender signs: a domain tag then the canonical body."""
    return TX_DOMAIN + canonical(body)


def sign_tx(
    key: SuiteKey,
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
    kind = _check_shape(value)
    try:
        # The canonical form is what everyone signs and hashes; execute exactly that (so 3.0
        # and 3, which canonicalise alike, can never run differently on two nodes): the
        # fields are read back from the canonical bytes, encoded once for the whole tx
        encoded, read_back = canonical_value(value)
        if read_back is not value and canonical(read_back) != encoded:
            # Encoding normalised something (3.0 is written 3, 1e16 as 10000000000000000): the
            # value peers read back from these bytes must encode to them again, or they refuse
            # what this door admitted (an integer past 2^53 raises here)
            raise EncodingError("the canonical form does not read back as itself")
    except EncodingError as exc:
        raise TxRejected("tx_malformed", str(exc)) from exc
    if len(encoded) > MAX_TX_BYTES:
        raise TxRejected("tx_too_large", f"canonical form exceeds {MAX_TX_BYTES} bytes", status=413)
    try:
        fields = orjson.loads(encoded)
    except orjson.JSONDecodeError:  # nested past orjson's 1,024 levels
        fields = json.loads(encoded)
    return _with_encoding(kind(**fields), encoded)


def tx_from_canonical(raw: bytes) -> Tx:
    """A transaction from its canonical bytes, as nodes send them to each other: parsed once,
    and refused unless `raw` is exactly its canonical form (then the arguments parsed from it
    are the canonical ones, and every node hashes the same bytes)."""
    if len(raw) > MAX_TX_BYTES:
        raise TxRejected("tx_too_large", f"{len(raw)} bytes exceeds {MAX_TX_BYTES}", status=413)
    # Most peers' bytes are canonical and read so at once (not encoded again); the rest is
    # read strictly below, which refuses what is wrong with them by name
    value = read_canonical_object(raw)
    if value is not None and value.keys() == _FIELDS:
        try:
            return _with_encoding(_check_shape(value)(**value), raw)
        except TxRejected:
            pass  # named below
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TxRejected("tx_malformed", f"invalid JSON: {exc}") from exc
    tx = _check_shape(value)(**value)
    try:
        canonical_form = tx.encode()
    except EncodingError as exc:
        raise TxRejected("tx_malformed", str(exc)) from exc
    if canonical_form != raw:
        raise TxRejected("tx_not_canonical", "a peer's transaction must be its canonical bytes")
    return tx


def _with_encoding(tx: Tx, encoded: bytes) -> Tx:
    """`tx` holding `encoded`, known to be its canonical bytes, instead of encoding it again."""
    tx.__dict__["_encoded"] = encoded  # what the cached property would store
    return tx


# Contract and method names and sender keys already found well formed: a node sees a few of
# each on thousands of transactions (bounded: past the limit the rest are checked each time)
_CHECKED_NAMES: dict[str, None] = {}
_CHECKED_SENDERS: dict[str, None] = {}
_CHECKED_LIMIT = 4096
_SIG_HEX = re.compile(f"[0-9a-f]{{{2 * SIGNATURE_BYTES}}}")


def _check_shape(value: Any) -> type[Tx]:
    """The kind of transaction `value` is, or TxRejected for any field of the wrong shape."""
    if not isinstance(value, dict):
        raise TxRejected("tx_malformed", "a transaction is a JSON object")
    if value.keys() != _FIELDS:
        missing, extra = _FIELDS - value.keys(), value.keys() - _FIELDS
        raise TxRejected(
            "tx_malformed", f"missing fields {sorted(missing)}, unknown fields {sorted(extra)}"
        )
    for name in ("chain_id", "sender", "contract", "method", "sig"):
        if not isinstance(value[name], str):
            raise TxRejected("tx_malformed", f"{name} must be a string")
    for name in ("nonce", "expiry_height"):
        field = value[name]
        if type(field) is not int and (not isinstance(field, int) or isinstance(field, bool)):
            raise TxRejected("tx_malformed", f"{name} must be an integer in 0..{MAX_NONCE}")
        if not 0 <= field <= MAX_NONCE:
            raise TxRejected("tx_malformed", f"{name} must be an integer in 0..{MAX_NONCE}")
    if not isinstance(value["args"], dict):
        raise TxRejected("tx_malformed", "args must be a JSON object")
    for name in ("contract", "method"):
        text = value[name]
        if text not in _CHECKED_NAMES:
            if not _NAME.fullmatch(text):
                raise TxRejected("tx_malformed", f"{name} must match {_NAME.pattern}")
            if len(_CHECKED_NAMES) < _CHECKED_LIMIT:
                _CHECKED_NAMES[text] = None
    sender = value["sender"]
    kind = _KINDS.get(len(sender))
    try:
        if sender not in _CHECKED_SENDERS:
            from_hex(sender, field="sender")
            if len(_CHECKED_SENDERS) < _CHECKED_LIMIT:
                _CHECKED_SENDERS[sender] = None
        if not _SIG_HEX.fullmatch(value["sig"]):
            from_hex(value["sig"], SIGNATURE_BYTES, field="sig")  # names what is wrong
    except EncodingError as exc:
        raise TxRejected("tx_malformed", str(exc)) from exc
    if kind is None:
        raise TxRejected(
            "tx_malformed",
            f"sender must be 32 bytes (Ed25519) or 65 bytes (SM2, 04 || X || Y),"
            f" got {len(value['sender']) // 2}",
        )
    return kind
