"""SMEs: registered on the chain (bound to an org and key), mirrored here; who acts on one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.auth import Caller
from services.credit import contract_terms, schemas
from services.credit._service_errors import (
    AlreadyExists,
    BadInput,
    NotYourSme,
    SmeNotFound,
)
from services.credit.models import (
    SmeRow,
)
from services.credit.runtime import Runtime
from services.credit.uscc import validate_uscc

SMES_PER_TX = contract_terms.MAX_BATCH
_ORG = re.compile(contract_terms.ORG)
_DID = re.compile(contract_terms.DID)


def register_sme(
    *, rt: Runtime, session: Session, caller: Caller, entry: schemas.SmeRegistration
) -> SmeRow:
    """Register one SME on the chain (bound to its org and key) and in the service database."""
    return register_smes(rt=rt, session=session, caller=caller, entries=[entry])[0]


def register_smes(
    *,
    rt: Runtime,
    session: Session,
    caller: Caller,
    entries: Sequence[schemas.SmeRegistration],
) -> list[SmeRow]:
    """Register SMEs; every entry is checked before anything is written."""
    prepared = [_prepare_registration(rt, caller, e, i) for i, e in enumerate(entries)]
    codes = [p["uscc"] for p in prepared]
    if len(set(codes)) != len(codes):
        raise BadInput("the same USCC is listed twice", code="duplicate_uscc")
    todo = []
    for args in prepared:
        on_chain = rt.ctx.ledger.read(
            contract_terms.NAMESPACE, contract_terms.sme_key(args["uscc"])
        )
        # Verify a retry names the same organisation; then it only completes the mirror
        if on_chain is not None and on_chain["org"] != args["org"]:
            raise AlreadyExists(
                f"SME {args['uscc']} is already registered to {on_chain['org']}",
                code="sme_exists",
            )
        if on_chain is None:
            todo.append(args)
    chunks = [todo[i : i + SMES_PER_TX] for i in range(0, len(todo), SMES_PER_TX)]
    if len(chunks) == 1:
        rt.chain.relay("register_smes", {"smes": chunks[0]})
    elif chunks:
        rt.chain.relay_many("register_smes", [{"smes": c} for c in chunks])
    names = {p["uscc"]: e.name for p, e in zip(prepared, entries, strict=True)}
    return [_mirror_sme(rt, session, code, names[code]) for code in codes]


def _prepare_registration(
    rt: Runtime, caller: Caller, entry: schemas.SmeRegistration, index: int
) -> dict[str, Any]:
    code = validate_uscc(entry.uscc)
    where = f"smes[{index}]" if index else "body"
    if "agency" in caller.roles or "operator" in caller.roles:
        if entry.org is None:
            raise BadInput(f"{where}.org: an agency names the SME's organisation", code="no_org")
        org, key = entry.org, None
    else:
        # Verify an SME registers itself only
        if entry.org not in (None, caller.org):
            raise NotYourSme(f"{caller.org} cannot register an SME for {entry.org}")
        org, key = caller.org, caller.key
    if not _ORG.match(org):
        raise BadInput(f"{where}.org: {org!r} is not an organisation id", code="bad_org")
    membership = rt.ctx.ledger.read("membership", f"org:{org}")
    if membership is None or membership["status"] != "active":
        raise BadInput(f"{where}.org: no active organisation {org} on the chain", code="no_org")
    if "sme" not in membership["roles"]:
        raise BadInput(f"{where}.org: organisation {org} lacks role sme", code="not_sme")
    if entry.did is not None and not _DID.match(entry.did):
        raise BadInput(f"{where}.did: {entry.did!r} is not a DID (did:method:id)", code="bad_did")
    args: dict[str, Any] = {"uscc": code, "org": org}
    if key is not None:
        args["key"] = key
    if entry.did is not None:
        args["did"] = entry.did
    return args


def _mirror_sme(rt: Runtime, session: Session, uscc: str, name: str | None) -> SmeRow:
    record = rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.sme_key(uscc))
    row = session.get(SmeRow, uscc) or SmeRow(uscc=uscc)
    row.org, row.key, row.did = record["org"], record["key"], record["did"]
    row.registered_by, row.tx, row.height = record["registered_by"], record["tx"], record["height"]
    row.name = name if name is not None else row.name
    session.add(row)
    return row


def get_sme(*, rt: Runtime, session: Session, uscc: str) -> SmeRow:
    """A registered SME (mirrored from the chain if this database has not seen it yet)."""
    code = validate_uscc(uscc)
    row = session.get(SmeRow, code)
    if row is not None:
        return row
    if rt.ctx.ledger.read(contract_terms.NAMESPACE, contract_terms.sme_key(code)) is None:
        raise SmeNotFound(f"SME {code} is not registered")
    return _mirror_sme(rt, session, code, None)


def list_smes(*, session: Session, caller: Caller) -> list[SmeRow]:
    query = select(SmeRow).order_by(SmeRow.uscc)
    if "sme" in caller.roles and not caller.roles & {"agency", "regulator"}:
        query = query.where(SmeRow.org == caller.org)
    return list(session.scalars(query.limit(1000)))


def owned(
    *, rt: Runtime, session: Session, caller: Caller, uscc: str, also: tuple[str, ...] = ()
) -> SmeRow:
    """The SME, if the caller is its own organisation or holds one of `also` roles."""
    sme = get_sme(rt=rt, session=session, uscc=uscc)
    if sme.org != caller.org and not caller.roles.intersection(also):
        raise NotYourSme(f"{caller.org} is not {sme.uscc}'s organisation ({sme.org})")
    return sme
