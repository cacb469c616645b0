"""The SDK sends one read token for a while instead of minting one per request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from chain.api import create_app
from chain.auth import mint_token
from chain.client import TOKEN_REUSE_S, ChainClient, Identity
from chain.crypto import SigningKey
from chain.errors import ClientError
from chain.node import Node


@pytest.fixture
def server(node: Node, live_server: Callable[[Any], Any]) -> Iterator[Any]:
    with live_server(create_app(node)) as running:
        yield running


@pytest.fixture
def minted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the SDK mints, in order (the real minting, recorded)."""
    tokens: list[str] = []

    def record(*args: Any, **kwargs: Any) -> str:
        tokens.append(mint_token(*args, **kwargs))
        return tokens[-1]

    monkeypatch.setattr("chain.client.mint_token", record)
    monkeypatch.setattr("chain.client._tokens", {})
    return tokens


def test_one_token_serves_a_clients_requests_until_its_reuse_window_ends(
    server: Any, keys: SimpleNamespace, minted: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_000.0]
    # The wall clock of the whole process, so the node judges each token's iat by it too
    monkeypatch.setattr("time.time", lambda: clock[0])
    bank = Identity("bank-a", keys.bank)
    with ChainClient(server.url, identity=bank) as client:
        for _ in range(5):
            client.status()
        assert len(minted) == 1  # five requests, one token, each accepted by the node
        clock[0] += TOKEN_REUSE_S - 1
        client.status()
        assert len(minted) == 1
        clock[0] += 1  # a quarter of the token's lifetime: a new one
        client.status()
        assert len(minted) == 2
        clock[0] -= 600  # the clock set back: the held token's iat is ahead of it
        client.status()
        assert len(minted) == 3
    # Another organisation's key gets its own token, never the bank's
    with ChainClient(server.url, identity=Identity("regulator", keys.regulator)) as other:
        other.status()
    assert len(minted) == 4 and len(set(minted)) == 4


def test_a_reused_token_is_still_refused_for_a_key_the_chain_does_not_know(
    server: Any, keys: SimpleNamespace, minted: list[str]
) -> None:
    outsider = Identity("bank-a", SigningKey.generate())
    with ChainClient(server.url, identity=outsider) as client:
        for _ in range(2):
            with pytest.raises(ClientError) as refused:
                client.status()
            assert refused.value.status == 401
    assert len(minted) == 1  # the same token, refused both times
