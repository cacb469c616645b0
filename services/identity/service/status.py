"""Credential status: suspend, reinstate, revoke, and the signed status list."""

from __future__ import annotations

from typing import Any

from jwcrypto import jwk
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.reads import MAX_READ_KEYS
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
from services.identity.status_mirror import Built, ListKey

READ_CHUNK = MAX_READ_KEYS  # status keys per chain read: a node's limit for one request


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
    rt.status_lists.wrote(int(receipt["height"]))
    if purpose == "revocation":
        row.revoked = True
    else:
        row.suspended = bool(value)
    return row, receipt


def status_list_document(
    *, rt: Runtime, session: Session, org: str, list_no: int, purpose: str
) -> tuple[dict[str, Any], str | None]:
    """The W3C BitstringStatusListCredential for a list, with the chain's status bits as of
    its current height: kept current by the chain's blocks (status_mirror.py), built from the
    chain's status keys where it is not kept, and kept until its bits or signing key change.

    Signed (vc+jwt) with the org's EdDSA key when this service holds one.
    """
    try:
        signer: tuple[str, jwk.JWK] | None = signing_key(
            rt=rt, session=session, org=org, alg="EdDSA"
        )
    except IdentityError:
        signer = None
    key = ListKey(org, list_no, purpose)

    def publish(bits: status_list.StatusList) -> tuple[dict[str, Any], str | None]:
        document = status_list.status_list_credential(
            list_id=status_list_url(rt=rt, org=org, list_no=list_no, purpose=purpose),
            issuer=c.did_of(org),
            purpose=purpose,
            status_list=bits,
            valid_from=iso(rt.now()),
        )
        if signer is None:
            return document, None
        kid, private = signer
        token = vc_jose.issue_credential(document, private, kid=kid, issued_at=int(rt.clock()))
        return document, token

    return rt.status_lists.document(
        key,
        height=rt.chain.height(),
        kid=None if signer is None else signer[0],
        build=lambda: bits_from_chain(rt=rt, session=session, key=key),
        publish=publish,
    )


def bits_from_chain(*, rt: Runtime, session: Session, key: ListKey) -> Built:
    """A list's bits read from the chain: the status key of each credential issued in it here,
    READ_CHUNK keys a chain request (a full list: 32 requests, not 131,072)."""
    bits = status_list.StatusList()
    indexes = list(
        session.scalars(
            select(IssuedCredential.list_index).where(
                IssuedCredential.org == key.org, IssuedCredential.list_no == key.list_no
            )
        )
    )
    for start in range(0, len(indexes), READ_CHUNK):
        chunk = indexes[start : start + READ_CHUNK]
        keys = [c.status_key(key.org, key.list_no, key.purpose, index) for index in chunk]
        for index, entry in zip(chunk, rt.chain.read_many(keys), strict=True):
            if entry is not None and entry["value"]:
                bits.set(index)
    return Built(bits, keep=bool(indexes))
