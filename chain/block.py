"""Block headers, commit certificates and receipts."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from functools import cached_property
from json.encoder import encode_basestring as _string
from typing import Any, Final

from chain.crypto import SIGNATURE_BYTES, verify
from chain.encoding import NATIVE_WRITER, SAFE_INT, canonical, from_hex
from chain.errors import EncodingError, ProofError
from chain.suites.base import Hasher, SuiteKey, Verifier
from chain.suites.sm2_curve import sm3_hasher
from chain.types import BlockHash, Height, PublicKey, Round

VOTE_DOMAIN = b"smartcity/vote/v1\n"
PRECOMMIT: Final = "precommit"
# A header is hashed under its chain's suite, which its proposer's key names (64 hex digits
# Ed25519: SHA-256; 130, SM2: SM3); the chain's certificate binds signers of that suite only
_HEADER_HASHERS: dict[int, Hasher] = {64: hashlib.sha256, 130: sm3_hasher}


@dataclass(frozen=True)
class Header:
    chain_id: str
    height: int
    prev_hash: str
    time_ms: int
    proposer: str
    txs_root: str
    tx_count: int
    receipts_root: str
    state_root: str
    validators_hash: str
    next_validators_hash: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hash(self) -> BlockHash:
        size = len(self.proposer) if type(self.proposer) is str else 0
        hasher = _HEADER_HASHERS.get(size, hashlib.sha256)
        return BlockHash(hasher(canonical(self.to_json())).hexdigest())

    @classmethod
    def from_json(cls, value: Any) -> Header:
        if not isinstance(value, dict) or set(value) != set(cls.__dataclass_fields__):
            raise EncodingError("header must have exactly the header fields")
        return cls(**value)


def vote_bytes(
    *, chain_id: str, kind: str, height: int, round_: int, block_hash: str | None
) -> bytes:
    """The message a validator signs for a vote."""
    body = {
        "chain_id": chain_id,
        "type": kind,
        "height": height,
        "round": round_,
        "block_hash": block_hash,
    }
    return VOTE_DOMAIN + canonical(body)


@dataclass(frozen=True)
class CommitSig:
    validator: PublicKey
    sig: str


@dataclass(frozen=True)
class Certificate:
    """More than 2/3 of the voting power precommitted to `block_hash` in `round`."""

    height: Height
    round: Round
    block_hash: BlockHash
    signatures: list[CommitSig] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "block_hash": self.block_hash,
            "signatures": [{"validator": s.validator, "sig": s.sig} for s in self.signatures],
        }

    @classmethod
    def from_json(cls, value: Any) -> Certificate:
        if not isinstance(value, dict) or set(value) != {
            "height",
            "round",
            "block_hash",
            "signatures",
        }:
            raise EncodingError("certificate must have height, round, block_hash, signatures")
        sigs = value["signatures"]
        if not isinstance(sigs, list) or not all(
            isinstance(s, dict) and set(s) == {"validator", "sig"} for s in sigs
        ):
            raise EncodingError("certificate signatures must be a list of {validator, sig}")
        return cls(
            height=Height(value["height"]),
            round=Round(value["round"]),
            block_hash=BlockHash(value["block_hash"]),
            signatures=[CommitSig(PublicKey(s["validator"]), s["sig"]) for s in sigs],
        )


def sign_precommit(
    key: SuiteKey, *, chain_id: str, height: int, round_: int, block_hash: str
) -> CommitSig:
    sig = key.sign(
        vote_bytes(
            chain_id=chain_id, kind=PRECOMMIT, height=height, round_=round_, block_hash=block_hash
        )
    )
    return CommitSig(PublicKey(key.public_hex), sig.hex())


def quorum_power(total_power: int) -> int:
    """The least voting power that is more than two thirds of `total_power`."""
    return total_power * 2 // 3 + 1


def verify_certificate(
    cert: Certificate, header: Header, validators: dict[str, int], verify: Verifier = verify
) -> list[str]:
    """Check a certificate commits `header` with more than 2/3 of `validators`' power, each
    signature checked by `verify`: the chain's suite's (chain.suites), Ed25519 by default.

    Returns the validators whose signatures counted.
    """
    # Verify the certificate is for this header
    if cert.height != header.height:
        raise ProofError(f"certificate height {cert.height} is not header height {header.height}")
    if cert.block_hash != header.hash:
        raise ProofError("certificate block_hash is not the header's hash")
    if not isinstance(cert.round, int) or isinstance(cert.round, bool) or cert.round < 0:
        raise ProofError("certificate round must be a non-negative integer")
    message = vote_bytes(
        chain_id=header.chain_id,
        kind=PRECOMMIT,
        height=cert.height,
        round_=cert.round,
        block_hash=cert.block_hash,
    )
    signers: list[str] = []
    for commit_sig in cert.signatures:
        # Verify each signer is a validator, signs once, and signs validly
        if commit_sig.validator not in validators:
            raise ProofError(f"certificate signer {commit_sig.validator[:16]}… is not a validator")
        if commit_sig.validator in signers:
            raise ProofError(f"validator {commit_sig.validator[:16]}… signed twice")
        try:
            raw = from_hex(commit_sig.sig, SIGNATURE_BYTES, field="signature")
        except EncodingError as exc:
            raise ProofError(str(exc)) from exc
        if not verify(commit_sig.validator, message, raw):
            raise ProofError(f"bad certificate signature by {commit_sig.validator[:16]}…")
        signers.append(commit_sig.validator)
    power = sum(validators[v] for v in signers)
    needed = quorum_power(sum(validators.values()))
    # Verify more than two thirds of the voting power signed
    if power < needed:
        raise ProofError(f"certificate has voting power {power}, needs {needed}")
    return signers


def validators_hash(validators: list[dict[str, Any]], hasher: Hasher = hashlib.sha256) -> str:
    """Hash of a validator set: canonical JSON of [{pub_key, power}] sorted by key, under the
    chain's suite's hash (`hasher`, SHA-256 by default)."""
    entries = sorted(
        ({"pub_key": v["pub_key"], "power": v["power"]} for v in validators),
        key=lambda v: str(v["pub_key"]),
    )
    return hasher(canonical(entries)).hexdigest()


@dataclass(frozen=True)
class Event:
    contract: str
    name: str
    data: dict[str, Any]

    def __init__(self, contract: str, name: str, data: dict[str, Any]) -> None:
        # In one step, not one object.__setattr__ a field: one event or more per transaction
        self.__dict__.update(contract=contract, name=name, data=data)

    def to_json(self) -> dict[str, Any]:
        return {"contract": self.contract, "name": self.name, "data": self.data}


@dataclass(frozen=True)
class Receipt:
    """Outcome of one transaction in a block; a failure is recorded, never aborts the block."""

    tx: str
    height: int
    index: int
    ok: bool
    code: str | None = None
    error: str | None = None
    events: tuple[Event, ...] = ()

    def __init__(
        self,
        tx: str,
        height: int,
        index: int,
        ok: bool,
        code: str | None = None,
        error: str | None = None,
        events: tuple[Event, ...] = (),
    ) -> None:
        # In one step, not one object.__setattr__ a field: a receipt per transaction
        self.__dict__.update(
            tx=tx, height=height, index=index, ok=ok, code=code, error=error, events=events
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tx": self.tx,
            "height": self.height,
            "index": self.index,
            "status": "ok" if self.ok else "failed",
            "code": self.code,
            "error": self.error,
            "events": [e.to_json() for e in self.events],
        }

    @classmethod
    def from_json(cls, value: Any) -> Receipt:
        if not isinstance(value, dict) or set(value) != {
            "tx",
            "height",
            "index",
            "status",
            "code",
            "error",
            "events",
        }:
            raise EncodingError("receipt must have exactly the receipt fields")
        return cls(
            tx=value["tx"],
            height=value["height"],
            index=value["index"],
            ok=value["status"] == "ok",
            code=value["code"],
            error=value["error"],
            events=tuple(Event(e["contract"], e["name"], e["data"]) for e in value["events"]),
        )

    def encode(self) -> bytes:
        """Canonical bytes: the receipt's Merkle leaf, and what the block store keeps."""
        return self._encoded

    @cached_property
    def _encoded(self) -> bytes:
        if NATIVE_WRITER:  # one pass in C over the whole receipt: faster than the f-strings
            return canonical(self.to_json())
        direct = _receipt_bytes(self)
        # Something the direct form does not take (a lone surrogate, an integer beyond 2^53,
        # a field of a peer's receipt of the wrong type) goes to the general encoder, which
        # writes it or refuses it with its own message
        return canonical(self.to_json()) if direct is None else direct


def _receipt_bytes(receipt: Receipt) -> bytes | None:
    """canonical(receipt.to_json()) written directly, or None where it cannot be: every node
    encodes every receipt (the receipts root), and the general encoder walked and sorted the
    whole nested value for what is, but for the events' data, one fixed shape. The members
    in RFC 8785 order: code, error, events, height, index, status, tx."""
    height, index, code, error = receipt.height, receipt.index, receipt.code, receipt.error
    if not (
        _is_plain_int(height)
        and _is_plain_int(index)
        and type(receipt.tx) is str
        and (code is None or type(code) is str)
        and (error is None or type(error) is str)
        and all(type(e.contract) is str and type(e.name) is str for e in receipt.events)
    ):
        return None
    try:
        events = ",".join(
            f'{{"contract":{_string(e.contract)},"data":{canonical(e.data).decode()},'
            f'"name":{_string(e.name)}}}'
            for e in receipt.events
        )
        return (
            f'{{"code":{_nullable(code)},"error":{_nullable(error)},"events":[{events}],'
            f'"height":{height},"index":{index},'
            f'"status":"{"ok" if receipt.ok else "failed"}","tx":{_string(receipt.tx)}}}'
        ).encode()
    except (EncodingError, UnicodeEncodeError):
        return None


def _is_plain_int(value: object) -> bool:
    return type(value) is int and -SAFE_INT <= value <= SAFE_INT


def _nullable(value: str | None) -> str:
    return "null" if value is None else _string(value)
