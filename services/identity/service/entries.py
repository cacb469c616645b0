"""Status list entries: a per-organisation counter, mapped to list indexes by a secret permutation.

Each issuer has one counter row (`identity_entry_counters`). A request reserves the positions it
needs by one atomic `UPDATE ... SET next = next + n RETURNING next` in a short transaction of its
own, on a connection of its own, before the request's session has read anything: concurrent
requests (threads, worker processes, hosts on one PostgreSQL) never get the same position, and
neither waits for the other's signing or anchoring. Position p is list p // LIST_ENTRIES, and its
index in that list is a keyed pseudo-random permutation of p % LIST_ENTRIES (a Feistel network
over 18 bits with cycle walking): distinct positions give distinct indexes, and an index tells a
verifier nothing of when the credential was issued (herd privacy). The key is derived from the
vault's key file, so every worker maps alike and a restart keeps the mapping.

A request refused after its reservation leaves its positions unused: a gap, never a reuse.
An organisation that issued under the earlier random choice starts on a fresh list after the
last one it may have used (legacy entries are never met).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.identity import contract as c
from services.identity.errors import StatusListsFull
from services.identity.models import EntryCounter, IssuedCredential

FEISTEL_ROUNDS = 6
HALF_BITS = 9  # two 9-bit halves: a permutation of 0 .. 2**18 - 1, walked down to LIST_ENTRIES
HALF_MASK = (1 << HALF_BITS) - 1
LEGACY_LIST_FILL = c.LIST_ENTRIES // 2  # the earlier random choice moved on at half full
KEY_INFO = b"smartcity identity status list entry order"

Entry = tuple[int, int]  # (list number, index in the list)


def entry_order_key(vault_key: bytes) -> bytes:
    """The permutation's key: HMAC-SHA256 of the vault key over a fixed label."""
    return hmac.new(vault_key, KEY_INFO, hashlib.sha256).digest()


@functools.lru_cache(maxsize=64)
def index_permutation(*, key: bytes, org: str, list_no: int) -> Callable[[int], int]:
    """The bijection of 0 .. LIST_ENTRIES - 1 that orders `org`'s list `list_no`."""
    tweak = hashlib.blake2b(f"{org}:{list_no}".encode(), key=key, digest_size=16).digest()
    # Each round's function of a 9-bit half, tabled once per list (3,072 hashes, ~2 ms)
    tables = [_round_table(key, tweak, number) for number in range(FEISTEL_ROUNDS)]

    def permute(position: int) -> int:
        value = position
        while True:  # cycle walking: 2 steps expected (2**17 of the 2**18 values are in range)
            left, right = value >> HALF_BITS, value & HALF_MASK
            for table in tables:
                left, right = right, left ^ table[right]
            value = (left << HALF_BITS) | right
            if value < c.LIST_ENTRIES:
                return value

    return permute


def _round_table(key: bytes, tweak: bytes, number: int) -> list[int]:
    def value(half: int) -> int:
        keyed = hashlib.blake2b(tweak + bytes((number, half >> 8, half & 0xFF)), key=key)
        return int.from_bytes(keyed.digest()[:2], "big") & HALF_MASK

    return [value(half) for half in range(1 << HALF_BITS)]


def reserve_entries(*, engine: Engine, key: bytes, org: str, count: int) -> list[Entry]:
    """`count` status list entries no other request of `org` gets, in their own transaction."""
    end = _advance(engine, org, count)
    first = end - count
    # Verify the entries fit the lists the contract accepts
    if end > c.MAX_LISTS * c.LIST_ENTRIES:
        raise StatusListsFull(f"{org} has used all {c.MAX_LISTS} status lists")
    entries = []
    for position in range(first, end):
        list_no, offset = divmod(position, c.LIST_ENTRIES)
        entries.append((list_no, index_permutation(key=key, org=org, list_no=list_no)(offset)))
    return entries


def _advance(engine: Engine, org: str, count: int) -> int:
    """Move `org`'s counter on by `count` (creating it on first use); the new end position."""
    bump = (
        update(EntryCounter)
        .where(EntryCounter.org == org)
        .values(next_position=EntryCounter.next_position + count)
        .returning(EntryCounter.next_position)
    )
    with engine.begin() as conn:
        end = conn.scalar(bump)
        if end is None:
            # First use: a concurrent first use inserts the same row, then both move it on
            issued = conn.scalar(select(func.count()).where(IssuedCredential.org == org)) or 0
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            made = dialect.insert(EntryCounter).values(org=org, next_position=_first(issued))
            conn.execute(made.on_conflict_do_nothing(index_elements=["org"]))
            end = conn.scalar(bump)
    if end is None:
        raise RuntimeError(f"the entry counter of {org} was not written")  # cannot happen
    return int(end)


def _first(issued: int) -> int:
    """0, or for an org that issued under the random choice the start of the list after the
    last it may have used (its list was the number issued // LEGACY_LIST_FILL)."""
    return 0 if issued == 0 else (issued // LEGACY_LIST_FILL + 1) * c.LIST_ENTRIES
