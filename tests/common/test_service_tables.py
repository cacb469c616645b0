"""A service's tables are created once however many of its processes start together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, inspect
from sqlalchemy.exc import OperationalError

from services.common.db import make_session_factory


def _tables() -> MetaData:
    metadata = MetaData()
    Table("readings", metadata, Column("id", Integer, primary_key=True))
    Table("segments", metadata, Column("id", String, primary_key=True))
    return metadata


def test_a_replica_that_meets_a_table_another_just_created_starts_anyway(tmp_path: Path) -> None:
    """On SQLite (no advisory lock) another replica may create a table between this one's look
    and its CREATE: this one looks again instead of failing to start."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    other = create_engine(url)
    metadata = _tables()
    raced: list[str] = []

    @event.listens_for(metadata.tables["segments"], "before_create")
    def another_replica_creates_it_first(table: Table, *_: Any, **__: Any) -> None:
        if not raced:
            raced.append(table.name)
            table.create(other)

    engine, sessions = make_session_factory(url, metadata)
    assert raced == ["segments"]
    assert set(inspect(engine).get_table_names()) == {"readings", "segments"}
    with sessions() as session:
        assert session.connection().exec_driver_sql("SELECT count(*) FROM segments").scalar() == 0


def test_another_database_error_is_not_taken_for_a_race(tmp_path: Path) -> None:
    metadata = _tables()
    calls: list[str] = []

    @event.listens_for(metadata.tables["segments"], "before_create")
    def the_disk_is_full(table: Table, *_: Any, **__: Any) -> None:
        calls.append(table.name)
        raise OperationalError("CREATE TABLE segments", {}, Exception("database or disk is full"))

    with pytest.raises(OperationalError, match="disk is full"):
        make_session_factory(f"sqlite:///{tmp_path / 'service.db'}", metadata)
    assert calls == ["segments"]  # refused once, not looked at again
