"""The credit service's own tables (off-chain): statements, features, and mirrors of chain facts.

Statements and their ratio features live only here. SMEs, ratings, consents and inquiries are
facts on the chain; these rows mirror them for listing and keep what must stay off-chain (the
reason codes' values, the features behind each rating's hash).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import Base


class SmeRow(Base):
    __tablename__ = "credit_smes"

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    org: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(String(130))  # a chain key: 64 hex (Ed25519) or 130 (SM2)
    did: Mapped[str | None] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(256))
    registered_by: Mapped[str] = mapped_column(String(64))
    tx: Mapped[str] = mapped_column(String(64))
    height: Mapped[int] = mapped_column(BigInteger)


class UploadRow(Base):
    __tablename__ = "credit_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    filename: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    periods: Mapped[list[str]] = mapped_column(JSON)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    time_ms: Mapped[int] = mapped_column(BigInteger)


class StatementRow(Base):
    __tablename__ = "credit_statements"
    __table_args__ = (UniqueConstraint("uscc", "period", name="credit_statements_period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    period: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    amounts: Mapped[dict[str, Any]] = mapped_column(JSON)
    upload_id: Mapped[str] = mapped_column(String(32))


class FeatureRow(Base):
    """The ratio features of one SME's period; only their hash ever reaches the chain."""

    __tablename__ = "credit_features"

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    sort_key: Mapped[int] = mapped_column(Integer)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    features_hash: Mapped[str] = mapped_column(String(64))


class FeatureVectorRow(Base):
    """The same features packed as float64 in POLISH_FEATURES order (service/vectors.py)."""

    __tablename__ = "credit_feature_vectors"

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    values: Mapped[bytes] = mapped_column(LargeBinary)


class RatingRow(Base):
    __tablename__ = "credit_ratings"
    __table_args__ = (UniqueConstraint("uscc", "seq", name="credit_ratings_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    tx: Mapped[str] = mapped_column(String(64))
    height: Mapped[int] = mapped_column(BigInteger)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(64))
    pd: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(3))
    period: Mapped[str] = mapped_column(String(8))
    features_hash: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class RatingBatchRow(Base):
    """A batch of ratings anchored by its Merkle root; the leaves give each rating's audit path."""

    __tablename__ = "credit_rating_batches"

    root: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer)
    anchor_tx: Mapped[str] = mapped_column(String(64))
    tx: Mapped[str] = mapped_column(String(64))
    height: Mapped[int] = mapped_column(BigInteger)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    clock: Mapped[int] = mapped_column(BigInteger)
    # The leaf hashes, 32 bytes each in leaf order
    leaves: Mapped[bytes] = mapped_column(LargeBinary)


class BatchRatingRow(Base):
    """One rating of an anchored batch; it reaches `rating:{uscc}` when a bank first reads it."""

    __tablename__ = "credit_batch_ratings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    root: Mapped[str] = mapped_column(String(64))
    index: Mapped[int] = mapped_column(Integer)
    clock: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(64))
    pd: Mapped[str] = mapped_column(String(16))
    score: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(3))
    period: Mapped[str] = mapped_column(String(8))
    features_hash: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class ConsentRow(Base):
    __tablename__ = "credit_consents"

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    bank: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    granted_tx: Mapped[str] = mapped_column(String(64))
    revoked_tx: Mapped[str | None] = mapped_column(String(64))


class InquiryRow(Base):
    __tablename__ = "credit_inquiries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    uscc: Mapped[str] = mapped_column(String(18), index=True)
    n: Mapped[int] = mapped_column(Integer)
    bank: Mapped[str] = mapped_column(String(64), index=True)
    bank_key: Mapped[str] = mapped_column(String(130))  # a chain key: 64 hex (Ed25519) or 130 (SM2)
    purpose: Mapped[str] = mapped_column(String(32))
    rating_seq: Mapped[int] = mapped_column(Integer)
    rating_tx: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    consent_tx: Mapped[str] = mapped_column(String(64))
    tx: Mapped[str] = mapped_column(String(64))
    height: Mapped[int] = mapped_column(BigInteger)
    time_ms: Mapped[int] = mapped_column(BigInteger)
