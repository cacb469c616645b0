"""Anchors: batches of record hashes committed by their RFC 6962 Merkle root."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from chain.contracts.framework import Args, Context, Contract, method
from chain.encoding import canonical
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
        state.put(
            f"batch:{ctx.tx_hash}",
            {
                "root": args.root,
                "count": args.count,
                "label": args.label,
                "metadata": args.metadata,
                "org": ctx.sender_org,
                "height": ctx.height,
            },
        )
        state.put(root_key(ctx.sender_org, args.root), ctx.tx_hash)
        ctx.emit("anchored", batch=ctx.tx_hash, root=args.root, count=args.count, label=args.label)
