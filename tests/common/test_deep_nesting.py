"""Deeply nested input gets a clear 400, never a 500 or a dead process.

Importing py_ecc (identity's ZK proofs) raised the recursion limit to 100,000 for the whole
process, and a body of 100,000 nested arrays then ran CPython's JSON decoder off the C stack:
`smartcity up` died with SIGSEGV on one unauthenticated request. At the default limit the same
input raised RecursionError, answered 500, from bodies, tokens and transaction arguments.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.encoding import parse_json
from chain.errors import EncodingError
from tests.common._suite import BODY_ROUTES


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


ROUTES = [
    *BODY_ROUTES,
    ("GET", "/credit/smes"),
    ("GET", "/roadhealth/v1/segments"),
]


def test_importing_the_zk_proofs_leaves_the_recursion_limit_alone() -> None:
    script = "import sys; import services.identity.proofs.bn254; print(sys.getrecursionlimit())"
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert int(run.stdout) <= 1000


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    depth=st.integers(min_value=1_100, max_value=120_000),
    route=st.sampled_from(ROUTES),
    opener=st.sampled_from(["[", '{"a":']),
)
def test_a_deeply_nested_body_is_refused_with_a_reason(
    suite_client: Any, depth: int, route: tuple[str, str], opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    body = opener * depth + "1" + closer * depth
    method, path = route
    response = suite_client.request(
        method, path, content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (path, depth, response.text[:200])
    assert response.json()["error"]["code"]  # a reason, in the suite's error shape


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(depth=st.integers(min_value=1_100, max_value=50_000), route=st.sampled_from(ROUTES))
def test_a_token_nesting_deeply_is_refused(
    suite_client: Any, depth: int, route: tuple[str, str]
) -> None:
    token = ".".join([_b64(b"[" * depth + b"]" * depth), _b64(b"{}"), "x"])
    method, path = route
    response = suite_client.request(method, path, headers={"authorization": f"Bearer {token}"})
    assert 400 <= response.status_code < 500, (path, depth, response.text[:200])
    assert response.json()["error"]["code"]


@pytest.mark.parametrize("depth", [300, 500, 900])
def test_a_transaction_whose_arguments_nest_deeply_is_refused(
    suite_client: Any, depth: int
) -> None:
    """Within the parser's reach, but deep enough for the canonical encoding's recursion."""
    tx = (
        '{"chain_id":"x","contract":"anchors","method":"anchor","nonce":1,"expiry_height":5,'
        f'"sender":"{"ab" * 32}","sig":"{"cd" * 64}","args":{{"a":{"[" * depth}1{"]" * depth}}}}}'
    )
    response = suite_client.post(
        "/chain/v1/txs", content=tx, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (depth, response.text[:200])
    assert response.json()["error"]["code"]


@pytest.mark.parametrize("depth", [1_100, 5_000, 100_000])
def test_parse_json_says_the_input_nests_too_deeply(depth: int) -> None:
    with pytest.raises(EncodingError, match="nested too deeply"):
        parse_json("[" * depth + "]" * depth)
