"""`POST /v1/state/{namespace}/read`: many keys' values in one request, as a reader of a whole
status list needs them, with the limits and refusals of every other read.

Whatever the body, the node answers the values (the same as one GET per key) or a 4xx naming
what is wrong, never a 500: Hypothesis draws bodies, keys and namespaces.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import reads
from chain.api import create_app
from chain.auth import mint_token
from chain.client import ChainClient, Identity
from chain.errors import ClientError
from chain.node import Node
from chain.reads import MAX_READ_BODY_BYTES, MAX_READ_KEYS
from chain.tx import Tx
from tests._conformance import bearer
from tests._crafted import lone, plain

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ROOTS = [f"{i:064x}" for i in range(1, 4)]
PRESENT = [f"root:city-agency:{root}" for root in ROOTS]


@pytest.fixture
def anchored(node: Node, keys: SimpleNamespace, sign: Callable[..., Tx]) -> list[str]:
    """Three anchors committed: their keys are present in `anchors`."""
    txs = [
        sign(keys.agency, "anchors", "anchor", {"root": root, "count": 1, "label": "t"})
        for root in ROOTS
    ]
    node.submit(txs)
    for tx in txs:
        assert node.wait(tx.hash, 10) is not None
    return [tx.hash for tx in txs]


@pytest.fixture
def api(node: Node, anchored: list[str]) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as client:
        yield client


@pytest.fixture
def token(keys: SimpleNamespace) -> dict[str, str]:
    return bearer(keys.bank, org="bank-a", audience="chain")


def read(api: TestClient, token: dict[str, str], body: Any, namespace: str = "anchors") -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.post(f"/v1/state/{namespace}/read", content=content, headers=token)


class Counting(httpx.HTTPTransport):
    """A client's transport noting how many keys each read request it sends asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/read"):
            self.sent.append(len(json.loads(request.content)["keys"]))
        return super().handle_request(request)


def refused(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


def test_values_are_those_of_one_get_per_key_in_the_keys_order(
    api: TestClient, token: dict[str, str], anchored: list[str], node: Node
) -> None:
    keys = [PRESENT[2], "root:none", PRESENT[0], PRESENT[2], "a/b c#d?"]
    answer = read(api, token, {"keys": keys})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["values"] == [anchored[2], None, anchored[0], anchored[2], None]
    one_by_one = [
        api.get(f"/v1/state/anchors/{quote(key, safe='')}", headers=token) for key in keys
    ]
    assert body["values"] == [answer.json()["value"] for answer in one_by_one]
    assert 1 <= body["height"] <= node.ledger.height


def test_limits_and_malformed_bodies_are_refused_with_their_reason(
    api: TestClient, token: dict[str, str]
) -> None:
    message = refused(read(api, token, {"keys": ["k"] * (MAX_READ_KEYS + 1)}), 400, "too_many_keys")
    assert f"at most {MAX_READ_KEYS}" in message
    assert read(api, token, {"keys": ["k"] * MAX_READ_KEYS}).status_code == 200
    bodies: list[Any] = [
        {"keys": []},
        {"keys": "k"},
        {"keys": [1]},
        {"keys": ["k"], "more": 1},
        {},
        ["k"],
        b'{"keys": ["k"]',
        b'{"keys": ["k"], "keys": ["j"]}',
        b"",
    ]
    for body in bodies:
        refused(read(api, token, body), 400, "read_malformed")
    message = refused(read(api, token, {"keys": ["ok", "a\nb"]}), 400, "bad_key")
    assert message.startswith("keys[1]:")
    refused(read(api, token, {"keys": ["k" * 257]}), 400, "bad_key")
    refused(read(api, token, {"keys": ["k"]}, namespace="Anchors"), 400, "bad_key")
    big = b'{"keys": ["' + b"k" * MAX_READ_BODY_BYTES + b'"]}'
    refused(read(api, token, big), 413, "read_too_large")


def test_reads_need_a_registered_members_token_as_every_read(
    api: TestClient, keys: SimpleNamespace, node: Node
) -> None:
    body = {"keys": PRESENT}
    for headers in (
        {},
        {"authorization": "Basic x"},
        bearer(keys.outsider, org="bank-a", audience="chain"),  # not a registered key
        bearer(keys.bank, org="bank-a", audience="identity"),  # another audience
        bearer(keys.bank, org="regulator", audience="chain"),  # another org's name
        {"authorization": "Bearer " + mint_token(keys.bank, org="bank-a", audience="chain")[:-4]},
    ):
        answer = read(api, headers, body)
        refused(answer, 401, "unauthorized")
        assert answer.headers["www-authenticate"] == "Bearer"
    # A node serving public reads answers without one, as its other reads do
    with TestClient(create_app(node, public_reads=True)) as public:
        assert read(public, {}, body).status_code == 200


def test_the_client_asks_again_for_what_did_not_fit_in_one_answer(
    node: Node,
    anchored: list[str],
    keys: SimpleNamespace,
    live_server: Callable[[Any], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Answers hold at most two values here (each a 66-byte hash): the rest are asked again
    monkeypatch.setattr(reads, "MAX_READ_VALUE_BYTES", 140)
    wanted = PRESENT * 3 + ["root:none"]
    transport = Counting()
    with (
        live_server(create_app(node)) as server,
        ChainClient(
            server.url, identity=Identity("regulator", keys.regulator), transport=transport
        ) as client,
    ):
        values = client.read_many("anchors", wanted)
    assert values == anchored * 3 + [None]
    assert transport.sent == [10, 8, 6, 4, 2]  # two values an answer: the rest asked again


def test_the_client_reads_more_keys_than_one_request_takes(
    node: Node, anchored: list[str], keys: SimpleNamespace, live_server: Callable[[Any], Any]
) -> None:
    wanted = [f"root:none:{i}" for i in range(MAX_READ_KEYS + 10)] + PRESENT
    transport = Counting()
    with (
        live_server(create_app(node)) as server,
        ChainClient(
            server.url, identity=Identity("regulator", keys.regulator), transport=transport
        ) as client,
    ):
        values = client.read_many("anchors", wanted)
        with pytest.raises(ClientError) as caught:
            client.read_many("anchors", ["fine", "not\tfine"])
    assert values == [None] * (MAX_READ_KEYS + 10) + anchored
    assert transport.sent == [MAX_READ_KEYS, 13, 2]
    assert (caught.value.status, caught.value.code) == (400, "bad_key")


# -- whatever the body: the values or a 4xx with its reason --------------------------------------

keys_drawn = st.lists(
    st.sampled_from([*PRESENT, "root:none", "", "k" * 257, "a\x00b", "x y"])
    | lone
    | st.text(max_size=8),
    max_size=8,
)
bodies = (
    st.builds(lambda keys: {"keys": keys}, keys_drawn)
    | st.dictionaries(st.sampled_from(["keys", "key", "more"]), plain, max_size=2)
    | plain
)
namespaces = st.sampled_from(["anchors", "membership", "Anchors", "a-b", "x" * 65]) | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
    min_size=1,
    max_size=6,
)


@SETTINGS
@given(body=bodies, namespace=namespaces)
def test_any_body_gets_the_values_or_a_4xx_naming_the_problem(
    api: TestClient, token: dict[str, str], node: Node, body: Any, namespace: str
) -> None:
    # \u escapes: a lone surrogate drawn into a key is sent as JSON can carry it
    answer = read(api, token, json.dumps(body).encode(), namespace=namespace)
    assert answer.status_code in (200, 400, 404, 405), answer.text
    if answer.status_code != 200:
        assert set(answer.json()["error"]) == {"code", "message"}
        return
    keys = body["keys"]
    expected = [node.ledger.read(namespace, key) for key in keys]
    assert answer.json()["values"] == expected
