"""What lets several road-health processes share one database (docs/operations.md).

An ingest takes its locks in one order, each group sorted: the batch's row (claimed by inserting
it), its devices' rows, then its segments' rows. A request waits only for one that took a lock
of the same group earlier, so two requests never wait for each other in a cycle; the network
row is taken only by segment imports and at start-up, which hold nothing else. PostgreSQL keeps
row locks to the end of the transaction (READ COMMITTED: a statement after a lock sees what its
holder committed). On SQLite, one process, the first write takes the whole database until the
commit and FOR UPDATE is left out: requests are serialised there anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Insert, String, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, load_only

from services.roadhealth.models import RhDeviceLock, RhNetwork, RhSegment

NETWORK_ROW = 1
STATE_COLUMNS = (
    RhSegment.name,
    RhSegment.condition,
    RhSegment.iri,
    RhSegment.iri_lower,
    RhSegment.iri_upper,
    RhSegment.windows,
    RhSegment.condition_tx,
    RhSegment.updated_at,
)


def insert_ignoring_existing(*, session: Session, model: Any) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING: a row another transaction inserts meanwhile is waited
    for, then left as that one wrote it (no error, nothing returned for it)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()


def lock_devices(*, session: Session, devices: Iterable[str]) -> None:
    """Hold the rows of these devices until the commit (created when missing)."""
    ids = sorted(set(devices))
    if not ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        # One statement text whatever the number of devices (parsed and planned once)
        listed = bindparam("ids", ids, type_=ARRAY(String))
        session.execute(
            insert_ignoring_existing(session=session, model=RhDeviceLock).from_select(
                ["device"], select(func.unnest(listed))
            )
        )
        where = RhDeviceLock.device == func.any_(listed)
    else:
        session.execute(
            insert_ignoring_existing(session=session, model=RhDeviceLock),
            [{"device": d} for d in ids],
        )
        where = RhDeviceLock.device.in_(ids)
    session.execute(
        select(RhDeviceLock.device).where(where).order_by(RhDeviceLock.device).with_for_update()
    ).all()


def lock_segments(*, session: Session, segments: Iterable[str]) -> Sequence[RhSegment]:
    """The segments, held until the commit and read after their last holder committed (their
    state, not their geometry: the index has it)."""
    ids = sorted(set(segments))
    if not ids:
        return []
    return session.scalars(
        select(RhSegment)
        .options(load_only(*STATE_COLUMNS))
        .where(RhSegment.id.in_(ids))
        .order_by(RhSegment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()


def lock_network(*, session: Session) -> RhNetwork:
    """The network's version row, held until the commit: imports and the first-run demo
    network take it, so two processes never import at once."""
    session.execute(
        insert_ignoring_existing(session=session, model=RhNetwork).values(id=NETWORK_ROW, version=0)
    )
    return session.scalars(
        select(RhNetwork)
        .where(RhNetwork.id == NETWORK_ROW)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def network_version(*, session: Session) -> int:
    """The network's version as committed (0 before the first import)."""
    version = session.scalar(select(RhNetwork.version).where(RhNetwork.id == NETWORK_ROW))
    return 0 if version is None else int(version)
