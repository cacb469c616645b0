"""A verifier's challenges: a fresh nonce, read before a presentation is checked, used once."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.errors import (
    AudienceMismatch,
    ChallengeUsed,
    IdentityError,
    NonceMismatch,
    ProofNonceMismatch,
    UnknownChallenge,
)
from services.identity.models import Challenge
from services.identity.runtime import Runtime
from services.identity.verification.report import as_list


def create_challenge(
    *, rt: Runtime, session: Session, org: str, audience: str | None, ttl_s: int
) -> Challenge:
    """A fresh nonce for a verifier; the holder signs it (and the audience) in the presentation."""
    row = Challenge(
        nonce=secrets.token_urlsafe(24),
        org=org,
        audience=audience or c.did_of(org),
        expires_at=rt.now() + timedelta(seconds=ttl_s),
    )
    session.add(row)
    return row


def open_challenge(*, rt: Runtime, session: Session, org: str, nonce: str) -> Challenge:
    """The caller's own unexpired, unused challenge for `nonce` (read, not yet consumed)."""
    row = session.get(Challenge, nonce)
    # Verify the nonce is this verifier's, unexpired and unused
    if row is None:
        raise UnknownChallenge("the nonce was not issued by this service: ask POST /challenges")
    if row.org != org:
        raise UnknownChallenge(
            "the nonce was issued to another organisation: a verifier uses its own challenge",
            code="foreign_challenge",
        )
    if _utc(row.expires_at) < rt.now():
        raise UnknownChallenge(
            "the challenge has expired: ask for a new one", code="challenge_expired"
        )
    if row.used_at is not None:
        raise ChallengeUsed("the nonce was already used: a presentation is accepted once")
    return row


def consume_challenge(*, rt: Runtime, session: Session, challenge: Challenge, digest: str) -> None:
    """Mark the nonce used, once: only a verification that ran to its report consumes it.

    The conditional update is the single-use guarantee under concurrency: of two requests
    racing with one nonce, exactly one changes the row.
    """
    done = session.execute(
        update(Challenge)
        .where(Challenge.nonce == challenge.nonce, Challenge.used_at.is_(None))
        .values(used_at=rt.now(), replay_key=digest)
    )
    if getattr(done, "rowcount", 1) != 1:
        raise ChallengeUsed("the nonce was already used: a presentation is accepted once")


def check_bound_to(claims: dict[str, Any], challenge: Challenge, what: str) -> None:
    """Refuse (4xx) a presentation or proof that names another nonce or audience.

    Read before any signature is checked: it can only refuse, never accept, and it leaves the
    verifier's nonce unused for the presentation that was really made for it.
    """
    proof = what == "proof"
    if claims.get("nonce") != challenge.nonce:
        wrong_nonce: type[IdentityError] = ProofNonceMismatch if proof else NonceMismatch
        raise wrong_nonce(f"the {what} was made for another nonce (another challenge): a replay")
    audiences = as_list(claims.get("context" if proof else "aud"))
    if challenge.audience not in audiences:
        wrong_audience: type[IdentityError] = ProofNonceMismatch if proof else AudienceMismatch
        raise wrong_audience(
            f"the {what} is not addressed to this verifier's audience {challenge.audience!r}"
        )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
