"""The whole suite in one app (the node and the three services), for tests of what every route
does alike: one per test module, on its own data folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def suite_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from smartcity.registry import CREDIT, IDENTITY, ROADHEALTH
    from smartcity.suite import open_suite

    suite = open_suite(
        tmp_path_factory.mktemp("suite") / "data", services=[IDENTITY, CREDIT, ROADHEALTH]
    )
    with TestClient(suite.app) as client:
        yield client
