"""What the process-topology tests share: one topology at a time per test session."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def topology_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hold the session's topology lock while a test runs its 9 processes.

    Two topologies at once on 2 cores starve each other's startup and consensus timeouts. The
    tests are marked `xdist_group("e2e-topology")` for `--dist loadgroup`, but pytest 9.2's
    structured node ids make pytest-xdist 3.8 drop the group silently (pytest-xdist#1386), so
    xdist workers of one session also take a file lock beside their temporary folders.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield  # one process runs the tests one after another
        return
    lock = tmp_path_factory.getbasetemp().parent / "e2e-topology.lock"
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
