"""An issuer's credentials, filtered by type and status, paged by cursor."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.errors import (
    BadRequest,
    NotController,
    UnknownType,
)
from services.identity.models import CredentialType, IssuedCredential
from services.identity.runtime import Runtime

CREDENTIAL_STATUSES = ("issued", "suspended", "revoked")
_CHANGE_PURPOSE = {"revoked": "revocation", "suspended": "suspension"}


@dataclass(frozen=True)
class ListedCredential:
    """A credential's metadata for a listing: no claims, and the subject only for its issuer."""

    row: IssuedCredential
    status: str
    status_height: int | None
    show_subject: bool


def credential_status(row: IssuedCredential) -> str:
    """One word for a credential's state; revocation is final, so it wins over suspension."""
    return "revoked" if row.revoked else "suspended" if row.suspended else "issued"


def list_credentials(
    *,
    rt: Runtime,
    session: Session,
    org: str,
    roles: frozenset[str],
    issuer: str | None,
    status: str | None,
    type_name: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ListedCredential], str | None]:
    """Credentials newest first (anchor height, then id), one page after `cursor`.

    An agency lists what it issued; a regulator may list every issuer's, without subjects
    (an auditor needs issuance and revocation, not whom each credential is about).
    """
    regulator = "regulator" in roles
    # Verify the caller may see the issuer it asks for
    if issuer is None and not regulator:
        issuer = org
    if issuer is not None and issuer != org and not regulator:
        raise NotController(f"an agency lists only the credentials it issued, not {issuer}'s")
    if type_name is not None and session.get(CredentialType, type_name) is None:
        raise UnknownType(f"credential type {type_name!r} is not registered")
    query = select(IssuedCredential)
    if issuer is not None:
        query = query.where(IssuedCredential.org == issuer)
    if type_name is not None:
        query = query.where(IssuedCredential.type == type_name)
    query = _status_filter(query, status)
    if cursor is not None:
        height, last_id = _parse_cursor(cursor)
        query = query.where(
            (IssuedCredential.anchor_height < height)
            | ((IssuedCredential.anchor_height == height) & (IssuedCredential.id > last_id))
        )
    query = query.order_by(IssuedCredential.anchor_height.desc(), IssuedCredential.id.asc())
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    listed = [
        ListedCredential(
            row, credential_status(row), _status_height(rt, row), show_subject=row.org == org
        )
        for row in rows
    ]
    return listed, _cursor_of(rows[-1]) if more else None


def _status_filter(query: Any, status: str | None) -> Any:
    if status is None:
        return query
    if status not in CREDENTIAL_STATUSES:
        raise BadRequest(
            f"status must be one of {', '.join(CREDENTIAL_STATUSES)}, not {status!r}",
            code="bad_status",
        )
    if status == "revoked":
        return query.where(IssuedCredential.revoked.is_(True))
    query = query.where(IssuedCredential.revoked.is_(False))
    return query.where(IssuedCredential.suspended.is_(status == "suspended"))


def _status_height(rt: Runtime, row: IssuedCredential) -> int | None:
    """The block height of the change that revoked or suspended the credential (the chain's)."""
    purpose = _CHANGE_PURPOSE.get(credential_status(row))
    if purpose is None:
        return None
    entry = rt.chain.read(c.status_key(row.org, row.list_no, purpose, row.list_index))
    return None if entry is None else int(entry["height"])


def _cursor_of(row: IssuedCredential) -> str:
    raw = f"{row.anchor_height}:{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[int, str]:
    """The (anchor height, id) a cursor from a previous page names, or BadRequest."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        height, _, last_id = raw.partition(":")
        if not last_id or not height.isdigit() or len(height) > 18:
            raise ValueError(raw)
        return int(height), last_id
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadRequest(
            "cursor is not one this service returned (use next_cursor as is)", code="bad_cursor"
        ) from exc
