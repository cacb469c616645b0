"""A node home's node.json as an operator edits it: what it sets reaches the running node, in a
node process and in `smartcity up`'s validators alike, and a bad value is refused by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chain.cluster import open_cluster
from chain.errors import ChainError
from chain.home import init_suite, load_node_home
from chain.journal import MEMPOOL_FOLDER
from chain.server import open_node
from smartcity.cli import main


def _edit(home: Path, **values: Any) -> None:
    config = home / "node.json"
    settings = json.loads(config.read_text())
    settings.update(values)
    config.write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite")
    init_suite(out, validators=2)
    return out


def test_a_node_process_takes_its_backlog_target_and_capacity_from_node_json(
    tmp_path: Path,
) -> None:
    init_suite(tmp_path / "c", validators=1)
    home = tmp_path / "c" / "nodes" / "validator-0"
    _edit(home, backlog_target_s=0.5, mempool_capacity=1_234, block_interval_ms=7)
    running = open_node(load_node_home(home))
    options = running.node.options
    assert (options.backlog_target_s, options.mempool_capacity) == (0.5, 1_234)
    assert options.block_interval_ms == 7
    assert options.mempool_journal == home / MEMPOOL_FOLDER
    assert running.node.mempool.capacity == 1_234


def test_smartcity_up_validators_take_node_json_too(tmp_path: Path) -> None:
    init_suite(tmp_path / "c", validators=2)
    for name in ("validator-0", "validator-1"):
        _edit(tmp_path / "c" / "nodes" / name, backlog_target_s=0.75, mempool_capacity=4_321)
    cluster = open_cluster(tmp_path / "c")
    try:
        for name, node in cluster.nodes.items():
            options = node.options
            assert (options.backlog_target_s, options.mempool_capacity) == (0.75, 4_321), name
            # the consensus engine paces an in-process cluster's blocks, not the file's interval
            assert options.block_interval_ms == 0
    finally:
        cluster.stop()


def test_a_home_whose_node_json_predates_the_backlog_target_gets_two_seconds(
    tmp_path: Path,
) -> None:
    init_suite(tmp_path / "c", validators=1)
    config = tmp_path / "c" / "nodes" / "validator-0" / "node.json"
    settings_ = json.loads(config.read_text())
    del settings_["backlog_target_s"]
    config.write_text(json.dumps(settings_))
    assert load_node_home(config.parent).settings.backlog_target_s == 2.0


# What an operator might write that is not a number of seconds from 0.05 to 60
NOT_A_BACKLOG = st.one_of(
    st.floats(max_value=0.05, exclude_max=True),
    st.floats(min_value=60, exclude_min=True, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=NOT_A_BACKLOG)
# A number's lookalikes a lax parse would take, and what only a float can be
@example(value=True)
@example(value="0.5")
@example(value=float("nan"))
@example(value=float("inf"))
@example(value=0)
def test_a_backlog_target_that_is_not_seconds_is_refused_by_name(suite: Path, value: Any) -> None:
    home = suite / "nodes" / "validator-1"
    original = (home / "node.json").read_text()
    try:
        _edit(home, backlog_target_s=value)
        with pytest.raises(ChainError, match="backlog_target_s"):
            load_node_home(home)
    finally:
        (home / "node.json").write_text(original)


def test_smartcity_node_refuses_a_bad_backlog_target_with_its_name(tmp_path: Path) -> None:
    init_suite(tmp_path / "c", validators=1)
    home = tmp_path / "c" / "nodes" / "validator-0"
    _edit(home, backlog_target_s="fast")
    result = CliRunner().invoke(main, ["node", "--home", str(home)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"{home / 'node.json'}: backlog_target_s: Input should be a valid number" in " ".join(
        result.output.split()
    )


def test_a_bad_peer_setting_is_named_by_its_path_and_its_value_is_not_echoed(
    tmp_path: Path,
) -> None:
    init_suite(tmp_path / "c", validators=1)
    home = tmp_path / "c" / "nodes" / "validator-0"
    _edit(
        home,
        database_url="postgresql://city:s3cret@db/chain",
        peers=[{"name": "v1", "pub_key": "ab", "port": 70_000}],
    )
    with pytest.raises(ChainError) as refused:
        load_node_home(home)
    assert "peers.0.port: Input should be less than or equal to 65535" in str(refused.value)
    assert "s3cret" not in str(refused.value)
