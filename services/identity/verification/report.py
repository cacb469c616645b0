"""The verification report: each check's outcome, what was read, and the proofs it rests on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHECKS = (
    "signature",
    "issuer_authorised",
    "validity_period",
    "status",
    "anchor",
    "schema",
    "holder_binding",
    "disclosures",
)
REQUIRED = ("signature", "issuer_authorised", "validity_period", "status", "anchor", "schema")


@dataclass
class Report:
    """The outcome of each check, what was read, and the proofs it rests on."""

    format: str
    issuer: str | None = None
    type: str | None = None
    subject: str | None = None
    subjects: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    # The issuer JWT's registered time claims (RFC 7519 exp/nbf): not part of the VCDM document
    # the report shows, but they limit validity as much as validFrom/validUntil do
    jwt_times: dict[str, Any] = field(default_factory=dict)
    disclosed: list[str] = field(default_factory=list)
    proofs: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, ok: bool | None, message: str) -> None:
        status = "skipped" if ok is None else "passed" if ok else "failed"
        self.checks[name] = {"status": status, "message": message}

    @property
    def verified(self) -> bool:
        failed = any(v["status"] == "failed" for v in self.checks.values())
        return not failed and all(
            self.checks.get(n, {}).get("status") == "passed" for n in REQUIRED
        )

    def finish(self) -> Report:
        for name in CHECKS:
            self.checks.setdefault(name, {"status": "skipped", "message": "not reached"})
        self.checks = {n: self.checks[n] for n in CHECKS} | {
            k: v for k, v in self.checks.items() if k not in CHECKS
        }
        return self

    def as_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "format": self.format,
            "issuer": self.issuer,
            "type": self.type,
            "subject": self.subject,
            "subjects": self.subjects,
            "checks": self.checks,
            "claims": self.claims,
            "disclosed": self.disclosed,
            "proofs": self.proofs,
        }


@dataclass
class Binding:
    """What the holder binding must show: a key binding JWT for this challenge, or a VP holder."""

    nonce: str | None = None
    audience: str | None = None
    require_key_binding: bool = False
    holder: str | None = None


def as_list(value: Any) -> list[Any]:
    """A claim that may be one value or a list, as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
