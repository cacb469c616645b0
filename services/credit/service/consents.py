"""Consents: signed by the SME on the chain for a bank, purpose and period."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.common.chain import parse_signed
from services.credit import contract_terms, schemas
from services.credit._service_errors import (
    BadInput,
)
from services.credit.models import (
    ConsentRow,
    SmeRow,
)
from services.credit.runtime import Runtime
from services.credit.service.common import now_ms
from services.credit.service.registry import owned


def submit_consent(
    *, rt: Runtime, session: Session, caller: Caller, raw_tx: dict[str, Any], grant: bool
) -> schemas.ConsentOut:
    """Submit the SME's own signed grant or revocation and mirror the consent."""
    method = "grant_consent" if grant else "revoke_consent"
    tx = parse_signed(
        raw_tx, signer=caller.key, contract_name=contract_terms.NAMESPACE, methods={method}
    )
    uscc = tx.args.get("uscc")
    if not isinstance(uscc, str):
        raise BadInput("the transaction's args name no uscc", code="bad_args")
    owned(rt=rt, session=session, caller=caller, uscc=uscc)
    rt.chain.submit_signed(tx)
    record = rt.ctx.ledger.read(
        contract_terms.NAMESPACE,
        contract_terms.consent_key(tx.args["uscc"], tx.args["bank"], tx.args["purpose"]),
    )
    row = _mirror_consent(session, record)
    return _consent_out(row)


def _mirror_consent(session: Session, record: dict[str, Any]) -> ConsentRow:
    key = (record["uscc"], record["bank"], record["purpose"])
    row = session.get(ConsentRow, key) or ConsentRow(uscc=key[0], bank=key[1], purpose=key[2])
    row.start_ms, row.end_ms, row.status = record["start_ms"], record["end_ms"], record["status"]
    row.granted_tx, row.revoked_tx = record["granted_tx"], record["revoked_tx"]
    session.add(row)
    return row


def _consent_out(row: ConsentRow) -> schemas.ConsentOut:
    record = {
        "status": row.status,
        "start_ms": row.start_ms,
        "end_ms": row.end_ms,
        "revoked_tx": row.revoked_tx,
    }
    return schemas.ConsentOut(
        uscc=row.uscc,
        bank=row.bank,
        purpose=row.purpose,
        start_ms=row.start_ms,
        end_ms=row.end_ms,
        status=row.status,
        granted_tx=row.granted_tx,
        revoked_tx=row.revoked_tx,
        live=contract_terms.consent_problem(record, now_ms()) is None,
    )


def list_consents(*, rt: Runtime, session: Session, caller: Caller) -> schemas.ConsentList:
    """Consents an SME granted, or those granted to a bank; each refreshed from the chain."""
    query = select(ConsentRow)
    if "bank" in caller.roles:
        query = query.where(ConsentRow.bank == caller.org)
    else:
        owned = select(SmeRow.uscc).where(SmeRow.org == caller.org)
        query = query.where(ConsentRow.uscc.in_(owned))
    out = []
    for row in session.scalars(query.order_by(ConsentRow.uscc, ConsentRow.bank)):
        record = rt.ctx.ledger.read(
            contract_terms.NAMESPACE, contract_terms.consent_key(row.uscc, row.bank, row.purpose)
        )
        out.append(_consent_out(_mirror_consent(session, record) if record else row))
    return schemas.ConsentList(consents=out)
