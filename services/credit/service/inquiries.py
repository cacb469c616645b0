"""Inquiries: every bank read, as the SME, the bank and the regulator list them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.credit import contract_terms, schemas
from services.credit.models import (
    InquiryRow,
)
from services.credit.runtime import Runtime
from services.credit.service.bank_reads import inquiry_columns
from services.credit.service.registry import owned
from services.credit.uscc import validate_uscc


def sme_inquiries(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str
) -> schemas.InquiryList:
    """Who read this SME's rating: the SME itself or a regulator asks; the chain is the truth."""
    sme = owned(rt=rt, session=session, caller=caller, uscc=uscc, also=("regulator",))
    ledger = rt.ctx.ledger
    total = int(
        ledger.read(contract_terms.NAMESPACE, contract_terms.inquiry_count_key(sme.uscc)) or 0
    )
    have = set(session.scalars(select(InquiryRow.n).where(InquiryRow.uscc == sme.uscc)))
    for n in range(1, total + 1):
        if n not in have:
            record = ledger.read(contract_terms.NAMESPACE, contract_terms.inquiry_key(sme.uscc, n))
            session.merge(InquiryRow(**inquiry_columns(record)))
    rows = session.scalars(
        select(InquiryRow).where(InquiryRow.uscc == sme.uscc).order_by(InquiryRow.n.desc())
    )
    return schemas.InquiryList(total_on_chain=total, inquiries=[_inquiry_out(r) for r in rows])


def all_inquiries(
    *,
    rt: Runtime,
    session: Session,
    bank: str | None,
    uscc: str | None,
    limit: int,
    offset: int,
) -> schemas.InquiryList:
    """Every inquiry on the chain (the regulator's audit), newest first, optionally filtered."""
    ledger = rt.ctx.ledger
    total = int(ledger.read(contract_terms.NAMESPACE, contract_terms.TOTAL_INQUIRIES) or 0)
    count = session.scalar(select(func.count()).select_from(InquiryRow)) or 0
    if count < total:
        have = set(session.scalars(select(InquiryRow.seq)))
        for seq in range(1, total + 1):
            if seq not in have:
                pointer = ledger.read(contract_terms.NAMESPACE, contract_terms.inquiry_log_key(seq))
                record = ledger.read(
                    contract_terms.NAMESPACE,
                    contract_terms.inquiry_key(pointer["uscc"], pointer["n"]),
                )
                session.merge(InquiryRow(**inquiry_columns(record)))
        session.flush()
    query = select(InquiryRow)
    if bank is not None:
        query = query.where(InquiryRow.bank == bank)
    if uscc is not None:
        query = query.where(InquiryRow.uscc == validate_uscc(uscc))
    rows = session.scalars(query.order_by(InquiryRow.seq.desc()).offset(offset).limit(limit))
    return schemas.InquiryList(total_on_chain=total, inquiries=[_inquiry_out(r) for r in rows])


def bank_inquiries(
    *, rt: Runtime, session: Session, bank: str, limit: int, offset: int
) -> schemas.InquiryList:
    """One bank's own reads, newest first; `total_on_chain` counts that bank's inquiries."""
    page = all_inquiries(rt=rt, session=session, bank=bank, uscc=None, limit=limit, offset=offset)
    mine = session.scalar(
        select(func.count()).select_from(InquiryRow).where(InquiryRow.bank == bank)
    )
    return page.model_copy(update={"total_on_chain": int(mine or 0)})


def _inquiry_out(row: InquiryRow) -> schemas.InquiryOut:
    return schemas.InquiryOut(**{k: getattr(row, k) for k in schemas.InquiryOut.model_fields})
