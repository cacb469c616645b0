"""Anchors: batches of record hashes committed by their RFC 6962 Merkle root."""

from __future__ import annotations

from json.encoder import encode_basestring as _string
from typing import Any

from pydantic import Field, field_validator

from chain.contracts.framework import Args, Context, Contract, method
from chain.encoding import canonical, writes_plainly
from chain.errors import ContractError
from chain.state import StateView

NAMESPACE = "anchors"
MAX_METADATA_BYTES = 4096
MAX_RECORDS = 10_000_000


def root_key(org: str, root: str) -> str:
    """State key of an organisation's anchor of a root: its value is the anchoring tx hash."""
    return f"root:{org}:{root}"


class AnchorArgs(Args):
    root: str = Field(pattern=r"^[0-9a-f]{64}$")
    count: int = Field(ge=1, le=MAX_RECORDS)
    label: str = Field(min_length=1, max_length=128)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(canonical(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata over {MAX_METADATA_BYTES} bytes")
        return value


class Anchors(Contract):
    """Anyone registered may anchor; a root is anchored once, so retries are harmless."""

    name = NAMESPACE
    system = True

    @method(AnchorArgs)
    def anchor(self, ctx: Context, state: StateView, args: AnchorArgs) -> None:
        # Verify this organisation has not anchored the root yet (keyed per organisation, so
        # nobody can claim another's root by anchoring it first)
        first = state.get(root_key(ctx.sender_org, args.root))
        if first is not None:
            raise ContractError("already_anchored", f"root already anchored by transaction {first}")
        batch = {
            "root": args.root,
            "count": args.count,
            "label": args.label,
            "metadata": args.metadata,
            "org": ctx.sender_org,
            "height": ctx.height,
        }
        state.put(f"batch:{ctx.tx_hash}", batch, encoded=batch_bytes(batch))
        state.put(root_key(ctx.sender_org, args.root), ctx.tx_hash)
        ctx.emit("anchored", batch=ctx.tx_hash, root=args.root, count=args.count, label=args.label)


def batch_bytes(batch: dict[str, Any]) -> bytes | None:
    """canonical(batch) written directly in RFC 8785 member order (count, height, label,
    metadata, org, root), or None where it cannot be (the general encoder then writes or
    refuses it): every node encodes one per anchor, and the general encoder walked and sorted
    what is, but for the metadata, one fixed shape. Only an empty metadata is written here."""
    count, height, label, org, root = (
        batch["count"],
        batch["height"],
        batch["label"],
        batch["org"],
        batch["root"],
    )
    if not (
        type(count) is int
        and type(height) is int
        and writes_plainly(count)
        and writes_plainly(height)
        and type(label) is str
        and type(org) is str
        and type(root) is str
        and type(batch["metadata"]) is dict
        and not batch["metadata"]
    ):
        return None
    try:
        return (
            f'{{"count":{count},"height":{height},"label":{_string(label)},"metadata":{{}},'
            f'"org":{_string(org)},"root":{_string(root)}}}'
        ).encode()
    except UnicodeEncodeError:  # a lone surrogate: the general encoder refuses it
        return None
