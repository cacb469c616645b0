"""A bearer check follows the chain: a revoked key or a removed role stops working with its block
(the embedded chain) or within the port's key cache (a remote node), though tokens are cached."""

# No `from __future__ import annotations`: FastAPI must see the route's Annotated alias itself.
from collections.abc import Callable
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from chain.api import create_app
from chain.auth import Caller, mint_token
from chain.client import ChainClient, Identity
from chain.crypto import SigningKey
from chain.node import Node
from services.common.auth import authenticator, require_role
from services.common.errors import install_error_handlers
from services.common.ledger import KEY_CACHE_S, EmbeddedLedger, LedgerPort, RemoteLedger, call


def _bank_app(ledger: LedgerPort) -> FastAPI:
    Bank = Annotated[Caller, Depends(require_role(authenticator(ledger, "credit"), "bank"))]
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/bank-only")
    async def bank_only(caller: Bank) -> dict[str, str]:
        return {"org": caller.org}

    return app


def _as(key: SigningKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(key, org='bank-a', audience='credit')}"}


def _set_roles(ledger: LedgerPort, keys: SimpleNamespace, roles: list[str]) -> None:
    params = {"id": "bank-a", "roles": roles}
    proposal = call(
        ledger, keys.agency, "governance", "propose", {"action": "set_roles", "params": params}
    )
    vote = {"proposal": proposal["tx"], "approve": True}
    assert call(ledger, keys.road, "governance", "vote", vote)["status"] == "ok"


def test_a_revoked_key_or_removed_role_stops_at_once_on_the_embedded_chain(
    node: Node, keys: SimpleNamespace
) -> None:
    ledger = EmbeddedLedger(node)
    second = SigningKey.from_seed(b"second bank key".ljust(32, b"\0"))
    call(ledger, keys.bank, "membership", "add_key", {"pub_key": second.public_hex})
    first, other = _as(keys.bank), _as(second)
    with TestClient(_bank_app(ledger)) as client:
        assert client.get("/bank-only", headers=other).status_code == 200
        assert client.get("/bank-only", headers=first).status_code == 200
        call(ledger, keys.bank, "membership", "revoke_key", {"pub_key": second.public_hex})
        refused = client.get("/bank-only", headers=other)
        assert refused.status_code == 401 and "not an active key" in refused.text
        _set_roles(ledger, keys, ["sme"])
        forbidden = client.get("/bank-only", headers=first)
        assert forbidden.status_code == 403 and "lacks role bank" in forbidden.text


def test_a_remote_node_s_answer_about_a_known_key_is_reused_for_key_cache_s_only(
    node: Node, keys: SimpleNamespace, live_server: Callable[[Any], Any]
) -> None:
    now = [1000.0]
    with (
        live_server(create_app(node)) as server,
        ChainClient(server.url, identity=Identity("regulator", keys.regulator)) as chain,
    ):
        ledger = RemoteLedger(chain, node.ledger.genesis, clock=lambda: now[0])
        headers = _as(keys.bank)
        second = SigningKey.from_seed(b"another bank key".ljust(32, b"\0"))
        with TestClient(_bank_app(ledger)) as client:
            assert client.get("/bank-only", headers=headers).status_code == 200
            assert client.get("/bank-only", headers=_as(second)).status_code == 401
            call(ledger, keys.bank, "membership", "add_key", {"pub_key": second.public_hex})
            assert client.get("/bank-only", headers=_as(second)).status_code == 200  # at once
            _set_roles(ledger, keys, ["sme"])
            now[0] += KEY_CACHE_S / 2  # the node's earlier answer still stands
            assert client.get("/bank-only", headers=headers).status_code == 200
            now[0] += KEY_CACHE_S / 2
            assert client.get("/bank-only", headers=headers).status_code == 403
