"""The identity service's own tables: what the agency must keep, personal fields sealed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import Base


class IssuerKey(Base):
    """An agency's credential-signing key; the private JWK is sealed (custodial demo mode)."""

    __tablename__ = "identity_issuer_keys"

    kid: Mapped[str] = mapped_column(String(200), primary_key=True)  # did:smartcity:org#frag
    org: Mapped[str] = mapped_column(String(64), index=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed_private_jwk: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CredentialType(Base):
    """A credential type's JSON Schema; the chain holds its hash."""

    __tablename__ = "identity_types"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    schema_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    schema_hash: Mapped[str] = mapped_column(String(64))
    org: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IssuedCredential(Base):
    """A credential an agency issued: claims sealed; hash, type, status entry and anchor plain."""

    __tablename__ = "identity_credentials"
    __table_args__ = (UniqueConstraint("org", "list_no", "list_index", name="identity_entry"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # urn:uuid:...
    org: Mapped[str] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(64))
    subject_did: Mapped[str] = mapped_column(String(128), index=True)
    format: Mapped[str] = mapped_column(String(16))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    list_no: Mapped[int] = mapped_column(Integer)
    list_index: Mapped[int] = mapped_column(Integer)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    sealed_claims: Mapped[bytes] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    anchor_tx: Mapped[str] = mapped_column(String(64))
    anchor_height: Mapped[int] = mapped_column(Integer)


class EntryCounter(Base):
    """An issuer's next status list position (service/entries.py maps it to a list and index)."""

    __tablename__ = "identity_entry_counters"

    org: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_position: Mapped[int] = mapped_column(BigInteger)


class Challenge(Base):
    """A nonce the service issued to a verifier; used once."""

    __tablename__ = "identity_challenges"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    org: Mapped[str] = mapped_column(String(64), index=True)
    audience: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # SHA-256 of what consumed the nonce, for audit. Not unique: replay protection is the
    # single-use nonce the holder signed, so the same bytes under another verifier's nonce
    # are refused by the nonce check, not by a database constraint.
    replay_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
