"""The credit contract's terms: its state keys, limits, argument models and the pure checks the
credit service shares with it (services/credit/contract.py is the contract; its code hash
covers this module too, `CreditContract.code_modules`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from chain.contracts.framework import Args
from chain.contracts.membership import PUB_KEY
from chain.encoding import canonical, sha256

NAMESPACE = "credit"
OPERATOR_ROLE = "operator"
GOVERNANCE_ROLE = "governance"
PURPOSES = ("loan_application", "monitoring")
Purpose = Literal["loan_application", "monitoring"]
GRADES = ("AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C")
MAX_CONSENT_MS = 3 * 366 * 24 * 3600 * 1000
MAX_BATCH = 256
MAX_METRICS_BYTES = 16_384
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
SHA256 = r"^[0-9a-f]{64}$"
ORG = r"^[a-z0-9][a-z0-9-]{1,62}$"
# A key of either suite (Ed25519's 64 hex digits, SM2's 130): _require_suite_key checks it is
# the shape of the chain's suite, recorded by an SM genesis in governance's state
KEY = PUB_KEY
KEY_HEX_DIGITS = {"ed25519-sha256": 64, "sm2-sm3": 130}
USCC = r"^[0-9A-HJ-NP-RTUWXY]{18}$"
DID = r"^did:[a-z0-9]+:[A-Za-z0-9._:%-]{1,200}$"


# -- state keys ----------------------------------------------------------------------------


def sme_key(uscc: str) -> str:
    return f"sme:{uscc}"


def model_key(sha256: str) -> str:
    return f"model:{sha256}"


def rating_key(uscc: str) -> str:
    return f"rating:{uscc}"


def consent_key(uscc: str, bank: str, purpose: str) -> str:
    return f"consent:{uscc}:{bank}:{purpose}"


def inquiry_count_key(uscc: str) -> str:
    return f"inquiries:{uscc}"


def inquiry_key(uscc: str, n: int) -> str:
    return f"inquiry:{uscc}:{n}"


TOTAL_INQUIRIES = "inquiries"
RATING_CLOCK = "rating_clock"
RATING_RECORD_TYPE = "credit/rating"
MAX_BATCH_RATINGS = 1_000_000
MAX_PATH = 64


def rating_batch_key(root: str) -> str:
    return f"rating_batch:{root}"


def inquiry_log_key(n: int) -> str:
    return f"inquiry_log:{n}"


# -- pure checks shared with the service ---------------------------------------------------


def uscc_check_character(first17: str) -> str:
    """GB 32100-2015 check character: weights 3^(i-1) mod 31, modulus 31."""
    total = sum(USCC_CHARSET.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    return USCC_CHARSET[(31 - total % 31) % 31]


def consent_problem(consent: dict[str, Any] | None, now_ms: int) -> tuple[str, str] | None:
    """Why a consent does not allow a read at `now_ms` (code, message), or None if it is live."""
    if consent is None:
        return "no_consent", "the SME has not granted this bank consent for this purpose"
    if consent["status"] == "revoked":
        return "consent_revoked", f"the SME revoked this consent (tx {consent['revoked_tx']})"
    if now_ms < consent["start_ms"]:
        return "consent_not_started", f"the consent starts at {consent['start_ms']} ms"
    if now_ms >= consent["end_ms"]:
        return "consent_expired", f"the consent ended at {consent['end_ms']} ms"
    return None


def rating_record(entry: dict[str, Any], model: str) -> dict[str, Any]:
    """The record of one batch rating whose canonical JSON's SHA-256 is its Merkle leaf."""
    return {
        "type": RATING_RECORD_TYPE,
        "uscc": entry["uscc"],
        "pd": entry["pd"],
        "score": entry["score"],
        "grade": entry["grade"],
        "reasons": list(entry["reasons"]),
        "features_hash": entry["features_hash"],
        "period": entry["period"],
        "model": model,
    }


def record_hash(record: dict[str, Any]) -> bytes:
    """SHA-256 of a rating record's canonical JSON: the record hash a `record` bundle proves."""
    return sha256(canonical(record))


# -- arguments -----------------------------------------------------------------------------


class SmeEntry(Args):
    uscc: str = Field(pattern=USCC)
    org: str = Field(pattern=ORG)
    key: str | None = Field(default=None, pattern=KEY)
    did: str | None = Field(default=None, pattern=DID)


class RegisterSmes(Args):
    smes: list[SmeEntry] = Field(min_length=1, max_length=MAX_BATCH)


class RegisterModel(Args):
    sha256: str = Field(pattern=SHA256)
    data_sha256: str = Field(pattern=SHA256)
    features: int = Field(ge=1, le=10_000)
    description: str = Field(max_length=256)
    metrics: dict[str, Any]

    @field_validator("metrics")
    @classmethod
    def small_metrics(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(canonical(value)) > MAX_METRICS_BYTES:
            raise ValueError(f"metrics over {MAX_METRICS_BYTES} bytes")
        return value


class ModelRef(Args):
    sha256: str = Field(pattern=SHA256)


class RatingEntry(Args):
    uscc: str = Field(pattern=USCC)
    # Decimal strings, not JSON floats: exact in every language, and canonical JSON of
    # integers and strings is several times cheaper to produce than RFC 8785 float formatting
    pd: str = Field(pattern=r"^(0\.\d{1,12}|1\.0{1,12}|0|1)$")
    score: str = Field(pattern=r"^-?\d{1,6}(\.\d{1,3})?$")
    grade: Literal["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"]
    reasons: list[str] = Field(max_length=8)
    features_hash: str = Field(pattern=SHA256)
    period: str = Field(pattern=r"^\d{4}(-Q[1-4])?$")

    @field_validator("reasons")
    @classmethod
    def short_codes(cls, value: list[str]) -> list[str]:
        if any(not 0 < len(code) <= 64 for code in value):
            raise ValueError("reason codes are 1..64 characters")
        return value


class RecordRatings(Args):
    model: str = Field(pattern=SHA256)
    ratings: list[RatingEntry] = Field(min_length=1, max_length=MAX_BATCH)


class RecordRatingBatch(Args):
    model: str = Field(pattern=SHA256)
    root: str = Field(pattern=SHA256)
    count: int = Field(ge=1, le=MAX_BATCH_RATINGS)


class BatchRating(Args):
    """A rating from an anchored batch with its audit path, shown to the contract at a read."""

    root: str = Field(pattern=SHA256)
    index: int = Field(ge=0)
    path: list[str] = Field(max_length=MAX_PATH)
    rating: RatingEntry


class GrantConsent(Args):
    uscc: str = Field(pattern=USCC)
    bank: str = Field(pattern=ORG)
    purpose: Purpose
    start_ms: int | None = Field(default=None, ge=0)
    end_ms: int = Field(ge=0)


class ConsentRef(Args):
    uscc: str = Field(pattern=USCC)
    bank: str = Field(pattern=ORG)
    purpose: Purpose


class RecordInquiry(Args):
    uscc: str = Field(pattern=USCC)
    bank: str = Field(pattern=ORG)
    bank_key: str = Field(pattern=KEY)
    purpose: Purpose
    rating_seq: int = Field(ge=1)
    batch: BatchRating | None = None
