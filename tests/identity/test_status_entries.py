"""Status list entries from the per-issuer counter: distinct under concurrent reservation by
separate engines (as worker processes are), permuted within a list by the vault-derived key,
and an organisation that issued under the earlier random choice starts on a fresh list."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, Table, insert
from sqlalchemy.orm import Session

from chain.db import make_engine
from services.common.db import make_session_factory
from services.identity import contract as c
from services.identity.app import TABLES
from services.identity.errors import StatusListsFull
from services.identity.models import IssuedCredential
from services.identity.service.entries import (
    entry_order_key,
    index_permutation,
    reserve_entries,
)

KEY = entry_order_key(b"k" * 32)


@pytest.fixture
def engines(db_url: str) -> Any:
    metadata = MetaData()
    for model in TABLES:
        model.__table__.to_metadata(metadata)  # type: ignore[attr-defined]
    first, _ = make_session_factory(db_url, metadata)
    made = [first, make_engine(db_url)]
    yield made
    for engine in made:
        engine.dispose()


def test_entries_reserved_at_once_by_two_engines_are_all_distinct(engines: list[Engine]) -> None:
    got: list[list[tuple[int, int]]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def reserve(engine: Engine) -> None:
        start.wait()
        for _ in range(10):
            entries = reserve_entries(engine=engine, key=KEY, org="city-agency", count=25)
            with lock:
                got.append(entries)

    threads = [threading.Thread(target=reserve, args=(engines[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [entry for entries in got for entry in entries]
    assert len(got) == 80 and len(every) == 2000
    assert len(set(every)) == 2000
    assert {list_no for list_no, _ in every} == {0}
    # Another organisation counts on its own
    assert len(reserve_entries(engine=engines[0], key=KEY, org="bank-a", count=3)) == 3


def test_a_list_is_a_secret_permutation_of_its_positions() -> None:
    permute = index_permutation(key=KEY, org="city-agency", list_no=0)
    indexes = [permute(p) for p in range(c.LIST_ENTRIES)]
    # Verify every position has its own index in the list
    assert sorted(indexes) == list(range(c.LIST_ENTRIES))
    # Verify consecutive credentials do not sit in consecutive (or ordered) entries
    first = indexes[:1000]
    assert sum(b == a + 1 for a, b in itertools.pairwise(first)) < 5
    assert first != sorted(first)
    # Verify another list, organisation or key orders them differently
    for other in (
        index_permutation(key=KEY, org="city-agency", list_no=1),
        index_permutation(key=KEY, org="bank-a", list_no=0),
        index_permutation(key=entry_order_key(b"j" * 32), org="city-agency", list_no=0),
    ):
        assert sum(other(p) == indexes[p] for p in range(1000)) < 5


def test_an_org_that_issued_randomly_starts_on_the_next_list(engines: list[Engine]) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"urn:uuid:legacy-{n}",
            "org": "city-agency",
            "type": "ResidenceCredential",
            "subject_did": "did:smartcity:holder",
            "format": "vc+jwt",
            "hash": f"{n:064x}",
            "list_no": 0,
            "list_index": 4096 + n,
            "sealed_claims": b"",
            "issued_at": now,
            "anchor_tx": "0" * 64,
            "anchor_height": 1,
        }
        for n in range(3)
    ]
    with Session(engines[0]) as session, session.begin():
        session.execute(insert(IssuedCredential), rows)
    entries = reserve_entries(engine=engines[0], key=KEY, org="city-agency", count=2)
    assert {list_no for list_no, _ in entries} == {1}


def test_the_last_list_the_contract_accepts_is_not_passed(engines: list[Engine]) -> None:
    table = Table("identity_entry_counters", MetaData(), autoload_with=engines[0])
    with engines[0].begin() as conn:
        last = c.MAX_LISTS * c.LIST_ENTRIES - 1
        conn.execute(insert(table).values(org="city-agency", next_position=last))
    first = reserve_entries(engine=engines[0], key=KEY, org="city-agency", count=1)[0]
    assert first[0] == c.MAX_LISTS - 1
    with pytest.raises(StatusListsFull, match="used all 100000 status lists"):
        reserve_entries(engine=engines[0], key=KEY, org="city-agency", count=1)
