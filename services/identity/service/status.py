"""Credential status: suspend, reinstate, revoke, and the signed status list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.credentials import status_list, vc_jose
from services.identity.errors import (
    AlreadyExists,
    IdentityError,
    NotController,
    UnknownCredential,
)
from services.identity.models import IssuedCredential
from services.identity.runtime import Runtime
from services.identity.service.common import iso
from services.identity.service.dids import require_active_issuer
from services.identity.service.issuance import status_list_url
from services.identity.service.issuer_keys import signing_key


def own_credential(
    *, rt: Runtime, session: Session, org: str, credential_id: str
) -> IssuedCredential:
    row = session.get(IssuedCredential, credential_id)
    if row is None:
        raise UnknownCredential(f"no credential {credential_id} was issued here")
    if row.org != org:
        raise NotController(f"credential {credential_id} was issued by another organisation")
    return row


def credential_claims(*, rt: Runtime, row: IssuedCredential) -> dict[str, Any]:
    claims: dict[str, Any] = rt.vault.open(row.sealed_claims, f"credential_claims:{row.id}")
    return claims


def change_status(
    *,
    rt: Runtime,
    session: Session,
    org: str,
    credential_id: str,
    purpose: str,
    value: int,
    reason: str,
) -> tuple[IssuedCredential, dict[str, Any]]:
    """Revoke (final), suspend or reinstate a credential: one auditable chain transaction."""
    row = own_credential(rt=rt, session=session, org=org, credential_id=credential_id)
    require_active_issuer(rt=rt, org=org, action="change a credential's status")
    # Verify the change makes sense before asking the chain
    if row.revoked:
        raise AlreadyExists(
            f"credential {credential_id} is revoked; that is final", code="already_revoked"
        )
    if purpose == "suspension" and row.suspended == bool(value):
        state = "suspended" if value else "not suspended"
        raise AlreadyExists(f"credential {credential_id} is already {state}", code="unchanged")
    receipt = rt.chain.submit(
        org,
        "set_status",
        {
            "list": row.list_no,
            "index": row.list_index,
            "purpose": purpose,
            "value": value,
            "reason": reason,
        },
    )
    if purpose == "revocation":
        row.revoked = True
    else:
        row.suspended = bool(value)
    return row, receipt


def status_list_document(
    *, rt: Runtime, session: Session, org: str, list_no: int, purpose: str
) -> tuple[dict[str, Any], str | None]:
    """The W3C BitstringStatusListCredential for a list, rebuilt from the chain's status keys.

    Signed (vc+jwt) with the org's EdDSA key when this service holds one.
    """
    bits = status_list.StatusList()
    indexes = session.scalars(
        select(IssuedCredential.list_index).where(
            IssuedCredential.org == org, IssuedCredential.list_no == list_no
        )
    )
    for index in indexes:
        entry = rt.chain.read(c.status_key(org, list_no, purpose, index))
        if entry is not None and entry["value"]:
            bits.set(index)
    document = status_list.status_list_credential(
        list_id=status_list_url(rt=rt, org=org, list_no=list_no, purpose=purpose),
        issuer=c.did_of(org),
        purpose=purpose,
        status_list=bits,
        valid_from=iso(rt.now()),
    )
    try:
        kid, key = signing_key(rt=rt, session=session, org=org, alg="EdDSA")
    except IdentityError:
        return document, None
    return document, vc_jose.issue_credential(document, key, kid=kid, issued_at=int(rt.clock()))
