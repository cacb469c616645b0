"""A service's answer comes after its write is committed: never 201 for a write that failed."""

# No `from __future__ import annotations`: FastAPI must see the local SessionDep alias itself.
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from services.common.db import committed_before_response, make_session_factory, session_dependency


class _Base(DeclarativeBase):
    pass


class _Note(_Base):
    __tablename__ = "test_notes"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)


@pytest.fixture
def app_and_factory(tmp_path: Path) -> Iterator[tuple[FastAPI, object]]:
    engine, factory = make_session_factory(f"sqlite:///{tmp_path / 'notes.db'}", _Base.metadata)
    app = FastAPI()
    SessionDep = Annotated[Session, committed_before_response(session_dependency(factory))]

    @app.post("/notes/{name}", status_code=201)
    def add(name: str, session: SessionDep) -> dict[str, str]:
        session.add(_Note(name=name))  # flushed, and refused on a duplicate, at commit
        return {"stored": name}

    yield app, factory
    engine.dispose()


def test_a_201_means_the_row_is_already_visible(app_and_factory: tuple[FastAPI, object]) -> None:
    app, factory = app_and_factory
    with TestClient(app) as client:
        assert client.post("/notes/first").status_code == 201
        with factory() as other:  # type: ignore[operator]
            assert other.scalars(select(_Note.name)).all() == ["first"]


def test_a_write_whose_commit_fails_is_not_acknowledged(
    app_and_factory: tuple[FastAPI, object],
) -> None:
    app, _ = app_and_factory
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/notes/twice").status_code == 201
        again = client.post("/notes/twice")
    assert again.status_code == 500
