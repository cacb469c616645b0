"""Request and response bodies of the credit API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from chain.json_types import JsonObjectAsIs
from services.credit.scoring.rating import reason_text

Purpose = Literal["loan_application", "monitoring"]


class Body(BaseModel):
    # Strict: JSON `0` is no `false` and `"1"` no number, as the document's types say
    model_config = ConfigDict(extra="forbid", strict=True)


# -- requests ------------------------------------------------------------------------------


class SmeRegistration(Body):
    uscc: str = Field(min_length=1, max_length=64, description="18-character USCC")
    org: str | None = Field(default=None, description="the SME's organisation on the chain")
    did: str | None = Field(default=None, max_length=210, description="the SME's DID, if any")
    name: str | None = Field(default=None, max_length=256, description="kept off the chain")


class SmeBatch(Body):
    smes: list[SmeRegistration] = Field(min_length=1, max_length=20_000)


class RatingBatch(Body):
    usccs: list[str] = Field(min_length=1, max_length=20_000)
    anchor: bool | None = Field(
        default=None,
        description="commit the ratings as one anchored Merkle root (true) or one chain entry"
        " each (false); by default, anchored when they would not fit in one transaction",
    )


class SignedTx(Body):
    tx: JsonObjectAsIs = Field(description="a transaction signed by the caller (see sdk.py)")


# -- responses -----------------------------------------------------------------------------


class ChainParams(BaseModel):
    chain_id: str
    height: int
    expiry_height: int


class SmeOut(BaseModel):
    uscc: str
    org: str
    key: str
    did: str | None
    name: str | None
    registered_by: str
    tx: str
    height: int


class SmeList(BaseModel):
    smes: list[SmeOut]


class UploadOut(BaseModel):
    upload_id: str
    uscc: str
    filename: str
    sha256: str
    rows: int
    periods: list[str]
    replaced: list[str]
    features_hash: dict[str, str]


class StatementPeriod(BaseModel):
    period: str
    currency: str
    amounts: dict[str, float | None]
    features_hash: str | None
    features: dict[str, float | None] | None


class StatementList(BaseModel):
    uscc: str
    periods: list[StatementPeriod]


class ReasonOut(BaseModel):
    code: str = Field(description="the model's feature name, e.g. Attr11")
    description: str = Field(description="what the ratio is (the data set's attribute list)")
    category: str
    points: float | None = Field(description="effect on the score; negative lowered it")
    value: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        """The reason in one sentence for a bank officer."""
        return reason_text(self.description, self.category, self.value, self.points)


class RatingOut(BaseModel):
    uscc: str
    seq: int | None = Field(
        description="the rating's number in rating:{uscc}; null for a batch rating no bank has"
        " read yet (it becomes current on the chain at the first read)"
    )
    pd: float
    score: float
    grade: str
    period: str
    model: str
    features_hash: str
    reasons: list[ReasonOut]
    tx: str
    height: int
    time_ms: int
    batch: str | None = Field(default=None, description="Merkle root of its anchored batch")


class RatingHistory(BaseModel):
    uscc: str
    ratings: list[RatingOut] = Field(description="newest first")


class BatchFailure(BaseModel):
    uscc: str
    code: str
    message: str


class BatchOut(BaseModel):
    model: str
    rated: int
    failed: list[BatchFailure]
    txs: list[str]
    root: str | None = Field(default=None, description="Merkle root of the anchored ratings")
    seconds: float
    ratings: list[RatingOut] | None = None


class InquiryOut(BaseModel):
    seq: int
    uscc: str
    n: int
    bank: str
    bank_key: str
    purpose: str
    rating_seq: int
    rating_tx: str
    model: str
    consent_tx: str
    tx: str
    height: int
    time_ms: int


class InquiryList(BaseModel):
    total_on_chain: int
    inquiries: list[InquiryOut]


class BankAnswer(BaseModel):
    rating: RatingOut
    proof: JsonObjectAsIs = Field(description="state bundle of credit/rating:{uscc}")
    inquiry: InquiryOut
    inquiry_proof: JsonObjectAsIs = Field(description="tx bundle of the inquiry record")
    rating_record: JsonObjectAsIs | None = Field(
        default=None, description="a batch rating's record, as anchored (canonical JSON hashed)"
    )
    record_proof: JsonObjectAsIs | None = Field(
        default=None, description="record bundle: the rating record in its anchored batch"
    )
    verify: str


class ConsentOut(BaseModel):
    uscc: str
    bank: str
    purpose: str
    start_ms: int
    end_ms: int
    status: str
    granted_tx: str
    revoked_tx: str | None
    live: bool


class ConsentList(BaseModel):
    consents: list[ConsentOut]


class ModelOut(BaseModel):
    sha256: str
    installed: bool
    active: bool
    status: str
    data_sha256: str | None
    metrics: JsonObjectAsIs | None
    chain: JsonObjectAsIs | None


class ModelList(BaseModel):
    active: str | None
    models: list[ModelOut]


class ModelDetail(ModelOut):
    proof: JsonObjectAsIs | None


class GovernanceOut(BaseModel):
    tx: str
    height: int
    status: str
    events: list[JsonObjectAsIs]
    model: ModelOut
