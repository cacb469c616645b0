"""Domain types shared by the chain's modules."""

from __future__ import annotations

from typing import NewType

Height = NewType("Height", int)
Round = NewType("Round", int)
TxHash = NewType("TxHash", str)  # lowercase hex SHA-256 of the signed transaction
BlockHash = NewType("BlockHash", str)  # lowercase hex SHA-256 of the canonical header
PublicKey = NewType("PublicKey", str)  # lowercase hex Ed25519 public key
OrgId = NewType("OrgId", str)
