"""A credential's type name costs the database no read per verification: POST
/credentials/verify runs on the event loop with the chain in this process, where every
database read holds up all other requests.

A name the chain does not hold is refused from the chain's state alone; a name the chain holds
but this service has no schema for (registered on the chain directly) is read once and then
remembered as missing for a second. Self-signed credentials reach the schema check: a citizen's
wallet key is on the chain, so the signature passes (tests/identity/test_hostile_credentials.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Engine

from services.identity.service.credential_types import MISSING_FOR_S

from .test_hostile_credentials import credential_for, vc_jwt

type_names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,40}", fullmatch=True)


@contextmanager
def type_reads() -> Iterator[list[str]]:
    """The SQL statements that read credential types, from any engine, while inside."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "identity_types" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def verify_with_type(identity: Any, holder: Any, name: str) -> dict[str, Any]:
    payload = credential_for(holder.did)
    payload["type"] = ["VerifiableCredential", name]
    answer = identity.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": vc_jwt(holder, payload)}
    )
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    assert report["checks"]["signature"]["status"] == "passed", report
    return report


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=type_names)
def test_a_type_the_chain_does_not_hold_is_refused_without_a_database_read(
    identity: Any, holder: Any, name: str
) -> None:
    with type_reads() as reads:
        report = verify_with_type(identity, holder, name)
    assert report["verified"] is False
    assert report["checks"]["schema"]["message"] == f"type {name} has no schema matching the chain"
    assert reads == []


def test_a_type_only_the_chain_holds_is_read_once_a_second_at_most(
    identity: Any, holder: Any
) -> None:
    # An agency registers the name on the chain directly: this service holds no schema for it
    receipt = identity.chain_call(
        "city-agency",
        "identity",
        "register_type",
        {"name": "ChainOnlyCredential", "schema_hash": "ab" * 32},
    )
    assert receipt["status"] == "ok", receipt
    started = time.monotonic()
    with type_reads() as reads:
        for _ in range(20):
            report = verify_with_type(identity, holder, "ChainOnlyCredential")
            assert report["checks"]["schema"]["message"] == (
                "type ChainOnlyCredential has no schema matching the chain"
            )
    elapsed_s = time.monotonic() - started
    assert 1 <= len(reads) <= 1 + elapsed_s / MISSING_FOR_S
