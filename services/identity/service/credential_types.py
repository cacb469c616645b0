"""Credential types: the JSON Schema here, its hash on the chain."""

from __future__ import annotations

import time
from typing import Any

import jsonschema
from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.errors import (
    AlreadyExists,
    BadSchema,
    UnknownType,
)
from services.identity.models import CredentialType
from services.identity.runtime import Runtime, TypeRecord
from services.identity.service.common import schema_hash

MISSING_FOR_S = 1.0  # how long a type this service does not hold is remembered as missing
MISSING_KEPT = 1024  # names remembered as missing at most (beyond, the memory starts afresh)


def register_type(
    *, rt: Runtime, session: Session, org: str, name: str, schema: dict[str, Any]
) -> tuple[CredentialType, int, str]:
    """Register a credential type: its JSON Schema here, the schema's hash on the chain."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise BadSchema(f"not a valid JSON Schema (2020-12): {exc.message}") from exc
    if schema.get("type") != "object":
        raise BadSchema('a credential type\'s schema describes the claims object: "type": "object"')
    if session.get(CredentialType, name) is not None or rt.chain.read(c.type_key(name)):
        raise AlreadyExists(f"credential type {name} is already registered", code="type_exists")
    digest = schema_hash(schema)
    receipt = rt.chain.submit(org, "register_type", {"name": name, "schema_hash": digest})
    row = CredentialType(
        name=name, schema_json=schema, schema_hash=digest, org=org, created_at=rt.now()
    )
    session.add(row)
    return row, int(receipt["height"]), str(receipt["tx"])


def get_type(*, rt: Runtime, session: Session, name: str) -> tuple[CredentialType, dict[str, Any]]:
    """The type's schema (from this service) and its on-chain record, which must agree."""
    row = session.get(CredentialType, name)
    on_chain: dict[str, Any] | None = rt.chain.read(c.type_key(name))
    if row is None or on_chain is None:
        raise UnknownType(f"credential type {name!r} is not registered")
    if on_chain["schema_hash"] != row.schema_hash:
        raise UnknownType(f"the schema held for {name} does not match the chain's hash")
    return row, on_chain


def type_record(*, rt: Runtime, session: Session, name: str) -> TypeRecord | None:
    """The type's schema as this service holds it, cached: a schema never changes under a name
    (the contract refuses to register a name twice), so one read per type and process. A name
    it does not hold is read again after MISSING_FOR_S at the soonest: verification runs on the
    event loop with the chain in this process, and a flood of such names must not read the
    database each time (the caller asks only for names the chain holds)."""
    if name in rt.types:
        return rt.types[name]
    now = time.monotonic()
    if rt.missing_types.get(name, 0.0) > now:
        return None
    row = session.get(CredentialType, name)
    if row is None:
        if len(rt.missing_types) >= MISSING_KEPT:
            rt.missing_types.clear()
        rt.missing_types[name] = now + MISSING_FOR_S
        return None
    rt.types[name] = TypeRecord(row.name, row.schema_json, row.schema_hash)
    return rt.types[name]


def validator_for(*, rt: Runtime, row: CredentialType | TypeRecord, partial: bool) -> Any:
    """A cached validator of the type's schema; `partial` drops `required` (for disclosures)."""
    key = f"{row.name}:{row.schema_hash}:{partial}"
    if key not in rt.validators:
        schema = _without_required(row.schema_json) if partial else row.schema_json
        rt.validators[key] = jsonschema.Draft202012Validator(schema)
    return rt.validators[key]


def _without_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_without_required(v) for v in node]
    return node


def schema_problems(*, validator: Any, claims: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "where": "/".join(str(p) for p in error.absolute_path) or "claims",
            "problem": error.message,
        }
        for error in sorted(validator.iter_errors(claims), key=lambda e: list(e.absolute_path))
    ]
