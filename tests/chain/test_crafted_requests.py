"""Crafted requests to the node's API get a 4xx naming what is wrong, never a 500.

A block's height in the path is ASCII digits: `str.isdigit` also holds for "²" (which `int`
refuses: a 500) and U+0661 (an Arabic-Indic 1: a second name for block 1). A bearer token's
JSON can escape one half of a surrogate pair ("\\ud800"); read into a `kid`, the refusal
quoting it could not be encoded, and every operation answered 500. Hypothesis draws both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.api import create_app
from chain.node import Node
from chain.tx import Tx
from tests._conformance import bearer
from tests._crafted import tokens_holding_lone

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Digits of every script, numerals and ASCII: what `str.isdigit` or `int` take
digits = st.text(
    st.characters(categories=["Nd", "No", "Nl"]) | st.sampled_from("0123456789"),
    min_size=1,
    max_size=6,
)


@pytest.fixture
def api(node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]) -> Iterator[TestClient]:
    tx = sign(keys.agency, "anchors", "anchor", {"root": "ab" * 32, "count": 1, "label": "t"})
    node.submit([tx])
    assert node.wait(tx.hash, 10) is not None  # block 1 exists
    with TestClient(create_app(node)) as client:
        yield client


@SETTINGS
@given(height=digits)
def test_a_height_is_ascii_digits_or_no_block(
    api: TestClient, node: Node, keys: SimpleNamespace, height: str
) -> None:
    token = bearer(keys.bank, org="bank-a", audience="chain")
    tip = node.ledger.height  # blocks may follow meanwhile, none go
    answer = api.get(f"/v1/blocks/{quote(height, safe='')}", headers=token)
    assert answer.status_code in (200, 404), (height, answer.text)
    number = int(height) if height.isascii() else None
    if number is not None and 1 <= number <= tip:
        assert answer.status_code == 200, answer.text
        assert answer.json()["header"]["height"] == number
    elif number is None or number == 0:
        assert answer.status_code == 404, (height, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unknown_block" and f"no block {height}" in error["message"]


def test_a_token_holding_a_lone_surrogate_is_refused_with_its_reason(
    api: TestClient, keys: SimpleNamespace
) -> None:
    @SETTINGS
    @given(token=tokens_holding_lone(keys.bank.public_hex))
    def check(token: str) -> None:
        for path in ("/v1/status", "/v1/blocks/1", "/v1/evidence"):
            answer = api.get(path, headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 401, answer.text
            error = answer.json()["error"]
            assert error["code"] == "unauthorized" and "not Unicode text" in error["message"]
            assert answer.headers["www-authenticate"] == "Bearer"

    check()
