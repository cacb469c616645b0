"""Missing, malformed, expired, forged, wrong-audience and wrong-role tokens get 401/403 and why."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chain.auth import mint_token
from chain.crypto import SigningKey


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic abc"}, "missing bearer token"),
        (bearer("not.a.jwt"), "malformed"),
        (bearer("abc"), "compact JWS"),
    ],
)
def test_requests_without_a_valid_token_get_401(
    credit_env: Any, headers: dict[str, str], reason: str
) -> None:
    response = credit_env.client.get("/credit/models", headers=headers)
    assert response.status_code == 401
    assert reason in response.json()["error"]["message"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_expired_forged_unregistered_and_wrong_audience_tokens(credit_env: Any) -> None:
    key = credit_env.key("bank-a")
    expired = mint_token(key, org="bank-a", audience="credit", ttl_s=60, now=time.time() - 3600)
    assert (
        "expired"
        in credit_env.client.get("/credit/models", headers=bearer(expired)).json()["error"][
            "message"
        ]
    )
    other_service = mint_token(key, org="bank-a", audience="identity")
    response = credit_env.client.get("/credit/models", headers=bearer(other_service))
    assert (
        response.status_code == 401 and "audience 'identity'" in response.json()["error"]["message"]
    )
    stranger = mint_token(SigningKey.generate(), org="bank-a", audience="credit")
    response = credit_env.client.get("/credit/models", headers=bearer(stranger))
    assert (
        response.status_code == 401 and "not an active key" in response.json()["error"]["message"]
    )
    impostor = mint_token(key, org="bank-b", audience="credit")
    response = credit_env.client.get("/credit/models", headers=bearer(impostor))
    assert (
        response.status_code == 401 and "belongs to bank-a" in response.json()["error"]["message"]
    )
    header, payload, signature = mint_token(key, org="bank-a", audience="credit").split(".")
    forged = ".".join(
        [header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")]
    )
    response = credit_env.client.get("/credit/models", headers=bearer(forged))
    assert response.status_code == 401 and "signature" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("org", "method", "path", "body"),
    [
        ("bank-a", "post", "/smes", {"uscc": "911101080000000194"}),
        ("regulator", "post", "/smes", {"uscc": "911101080000000194"}),
        ("sme-demo", "post", "/smes/batch", {"smes": [{"uscc": "911101080000000194"}]}),
        ("sme-demo", "post", "/ratings/batch", {"usccs": ["911101080000000194"]}),
        ("bank-a", "post", "/ratings/batch", {"usccs": ["911101080000000194"]}),
        ("city-agency", "get", "/smes/911101080000000194/rating", None),
        ("regulator", "get", "/smes/911101080000000194/rating", None),
        ("bank-a", "post", "/consents", {"tx": {}}),
        ("city-agency", "post", "/consents/revocations", {"tx": {}}),
        ("sme-demo", "get", "/inquiries", None),
        ("bank-a", "get", "/inquiries", None),
        ("bank-a", "get", "/smes/911101080000000194/inquiries", None),
        ("bank-a", "post", "/models/" + "ab" * 32 + "/governance", {"tx": {}}),
        ("bsn-operator", "get", "/consents", None),
    ],
)
def test_wrong_roles_get_403_naming_the_role(
    credit_env: Any, org: str, method: str, path: str, body: Any
) -> None:
    call = getattr(credit_env.client, method)
    kwargs = {"json": body} if body is not None else {}
    response = call(f"/credit{path}", headers=credit_env.auth(org), **kwargs)
    assert response.status_code == 403, response.text
    assert f"organisation {org} lacks role" in response.json()["error"]["message"]


def test_an_sme_cannot_touch_another_smes_data(credit_env: Any) -> None:
    uscc = str(credit_env.statements["uscc"].iloc[0])
    assert credit_env.post("/smes", "sme-demo", json={"uscc": uscc}).status_code == 201
    rival = credit_env.add_sme_org("sme-nosy")
    headers = bearer(mint_token(rival, org="sme-nosy", audience="credit"))
    for method, path in [
        ("get", f"/smes/{uscc}/statements"),
        ("post", f"/smes/{uscc}/ratings"),
        ("get", f"/smes/{uscc}/rating"),
        ("get", f"/smes/{uscc}/inquiries"),
    ]:
        response = getattr(credit_env.client, method)(f"/credit{path}", headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "not_your_sme"
    assert credit_env.get("/consents", "sme-demo").status_code == 200
