"""Every auth failure gets 401/403 with its reason, every bad input its 4xx, nothing written."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jwcrypto import jwk
from sqlalchemy import func, select

from chain.auth import mint_token
from chain.crypto import SigningKey
from services.identity import contract as c
from services.identity.models import IssuedCredential

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def body(subject: str, **extra: Any) -> dict[str, Any]:
    return {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS, **extra}


def post(idn: Any, path: str, token: str | None, **kw: Any) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return idn.client.post(f"/identity{path}", headers=headers, **kw)


def error(answer: Any) -> dict[str, Any]:
    return dict(answer.json()["error"])


def credential_rows(idn: Any) -> int:
    with idn.suite.services["identity"].state.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(IssuedCredential)) or 0)


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (lambda idn: None, 401, "missing bearer token"),
        (lambda idn: "not-a-jwt", 401, "not a compact JWS"),
        (lambda idn: idn.token("city-agency", now=time.time() - 4000), 401, "expired"),
        (lambda idn: idn.token("city-agency", audience="credit"), 401, "audience 'credit'"),
        (
            lambda idn: mint_token(SigningKey.generate(), org="city-agency", audience="identity"),
            401,
            "not an active key",
        ),
        (lambda idn: idn.token("city-agency")[:-6] + "AAAAAA", 401, "signature"),
        (
            lambda idn: mint_token(idn.key("bank-a"), org="city-agency", audience="identity"),
            401,
            "belongs to bank-a",
        ),
        (lambda idn: idn.token("bank-a"), 403, "lacks role agency"),
    ],
    ids=[
        "missing",
        "garbage",
        "expired",
        "wrong-audience",
        "unknown-key",
        "forged",
        "impersonation",
        "wrong-role",
    ],
)
def test_issuing_refuses_bad_callers_with_the_reason(issuer, holder, token, status, reason):
    answer = post(issuer, "/credentials", token(issuer), json=body(holder.did))
    assert answer.status_code == status, answer.text
    assert reason in error(answer)["message"]
    assert credential_rows(issuer) == 0


def test_every_endpoint_needs_a_token(identity):
    for method, path in [
        ("GET", "/dids/did:smartcity:x1"),
        ("POST", "/credentials/verify"),
        ("GET", "/1.0/identifiers/did:smartcity:city-agency"),
        ("POST", "/challenges"),
        ("POST", "/zk/verify"),
        ("POST", "/presentations/verify"),
        ("GET", "/types/ResidenceCredential"),
    ]:
        answer = identity.client.request(method, f"/identity{path}")
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"


def test_agency_not_admitted_for_a_type_cannot_issue_it(issuer, holder):
    other = issuer.call(
        "city-agency",
        "POST",
        "/types",
        json={"name": "BusinessLicence", "schema": {"type": "object"}},
    )
    assert other.status_code == 201
    answer = issuer.call(
        "city-agency",
        "POST",
        "/credentials",
        json={**body(holder.did), "type": "BusinessLicence", "claims": {}},
    )
    assert answer.status_code == 403
    assert error(answer)["code"] == "not_authorised_issuer"
    # Nor can it anchor directly on the chain, bypassing the service
    receipt = issuer.chain_call(
        "city-agency",
        "identity",
        "anchor_credentials",
        {"items": [{"hash": "ab" * 32, "type": "BusinessLicence", "list": 0, "index": 1}]},
    )
    assert receipt["status"] == "failed" and receipt["code"] == "not_issuer"
    assert credential_rows(issuer) == 0


def test_removed_issuer_cannot_issue_but_old_credentials_still_verify(issuer, holder):
    first = issuer.call("city-agency", "POST", "/credentials", json=body(holder.did))
    assert first.status_code == 201
    issuer.govern("remove_issuer", {"org": "city-agency", "types": ["ResidenceCredential"]})
    answer = issuer.call("city-agency", "POST", "/credentials", json=body(holder.did))
    assert answer.status_code == 403 and error(answer)["code"] == "not_authorised_issuer"
    report = issuer.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": first.json()["credential"]}
    ).json()
    assert report["checks"]["issuer_authorised"]["status"] == "passed"  # authorised at issuance
    assert credential_rows(issuer) == 1


def test_bad_input_gets_a_specific_4xx_and_nothing_is_written(issuer, holder):
    idn = issuer
    height = idn.ledger.height()
    cases = [
        (b"{not json", 422, "invalid_request"),
        (
            {**body(holder.did), "claims": {**CLAIMS, "birthDate": 19900402}},
            422,
            "schema_violation",
        ),
        ({**body(holder.did), "claims": {"givenName": "Mei"}}, 422, "schema_violation"),
        ({**body(holder.did), "claims": {**CLAIMS, "nickname": "M"}}, 422, "schema_violation"),
        (body("did:smartcity:0123456789abcdef0123456789abcdef"), 404, "unknown_did"),
        (body("did:web:example.com"), 404, "invalid_did"),
        ({**body(holder.did), "type": "PassportCredential"}, 404, "unknown_type"),
        ({**body(holder.did), "type": "lowercase"}, 422, "invalid_request"),
        ({**body(holder.did), "format": "ldp_vc"}, 422, "invalid_request"),
        ({**body(holder.did), "disclose": ["ssn"]}, 400, "bad_request"),
        ({**body(holder.did), "zk": {"age": "givenName"}}, 400, "bad_request"),
        ({**body(holder.did), "unexpected": 1}, 422, "invalid_request"),
        ({"items": [body(holder.did), body("did:smartcity:nobody")]}, 404, "unknown_did"),
    ]
    for payload, status, code in cases:
        path = (
            "/credentials/batch"
            if isinstance(payload, dict) and "items" in payload
            else "/credentials"
        )
        kwargs = (
            {
                "content": payload,
                "headers": {**idn.headers("city-agency"), "content-type": "application/json"},
            }
            if isinstance(payload, bytes)
            else {"json": payload, "headers": idn.headers("city-agency")}
        )
        answer = idn.client.post(f"/identity{path}", **kwargs)
        assert answer.status_code == status, (payload, answer.text)
        assert error(answer)["code"] == code, (payload, answer.text)
        assert error(answer)["message"]
    schema_error = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={**body(holder.did), "claims": {**CLAIMS, "birthDate": 19900402}},
    )
    assert "birthDate" in error(schema_error)["message"]
    assert error(schema_error)["details"][0]["where"] == "birthDate"
    # Nothing anchored, nothing recorded
    assert credential_rows(idn) == 0
    assert idn.ledger.height() == height


def test_bad_dids_types_and_verifications(issuer, holder):
    idn = issuer
    public = holder.key.export_public(as_dict=True)
    again = idn.call("city-agency", "POST", "/dids", json={"keys": [{"publicKeyJwk": public}]})
    assert again.status_code == 409 and error(again)["code"] == "did_exists"
    private = holder.key.export_private(as_dict=True)
    leaked = idn.call("city-agency", "POST", "/dids", json={"keys": [{"publicKeyJwk": private}]})
    assert leaked.status_code == 422 and error(leaked)["code"] == "invalid_key"
    rsa = jwk.JWK.generate(kty="RSA", size=2048).export_public(as_dict=True)
    weak = idn.call("city-agency", "POST", "/dids", json={"keys": [{"publicKeyJwk": rsa}]})
    assert weak.status_code == 422 and "Ed25519" in error(weak)["message"]
    by_bank = idn.call("bank-a", "POST", "/dids", json={"keys": [{"publicKeyJwk": public}]})
    assert by_bank.status_code == 403
    assert idn.call("bank-a", "GET", "/dids/did:smartcity:nobody-here").status_code == 404
    assert idn.call("bank-a", "GET", "/types/NoSuchType").status_code == 404
    bad_schema = idn.call(
        "city-agency",
        "POST",
        "/types",
        json={"name": "BadSchema", "schema": {"type": "no-such-type"}},
    )
    assert bad_schema.status_code == 422 and error(bad_schema)["code"] == "bad_schema"
    dup = idn.call(
        "city-agency",
        "POST",
        "/types",
        json={"name": "ResidenceCredential", "schema": {"type": "object"}},
    )
    assert dup.status_code == 409
    garbage = idn.call("bank-a", "POST", "/credentials/verify", json={"credential": "garbage"})
    assert garbage.status_code == 422 and error(garbage)["code"] == "malformed_token"
    # The bank may not rotate or deactivate a DID the agency controls
    rotate = idn.call(
        "bank-a",
        "PUT",
        f"/dids/{holder.did}/keys",
        json={"keys": [{"publicKeyJwk": public}], "version": 1},
    )
    assert rotate.status_code == 403 and error(rotate)["code"] == "not_controller"
    assert idn.call("bank-a", "DELETE", f"/dids/{holder.did}").status_code == 403


def test_revoking_needs_the_issuing_agency(issuer, holder):
    idn = issuer
    issued = idn.call("city-agency", "POST", "/credentials", json=body(holder.did)).json()
    by_bank = idn.call("bank-a", "POST", f"/credentials/{issued['id']}/revoke", json={})
    assert by_bank.status_code == 403 and "lacks role agency" in error(by_bank)["message"]
    unknown = idn.call("city-agency", "POST", "/credentials/urn:uuid:nope/revoke", json={})
    assert unknown.status_code == 404 and error(unknown)["code"] == "unknown_credential"
    bad_reason = idn.call(
        "city-agency", "POST", f"/credentials/{issued['id']}/revoke", json={"reason": "Has Spaces!"}
    )
    assert bad_reason.status_code == 422
    # A status change straight on the chain by another org fails: the entry is not theirs
    entry = issued["status"][0]
    receipt = idn.chain_call(
        "road-authority",
        "identity",
        "set_status",
        {"list": entry["list"], "index": entry["index"], "purpose": "revocation", "value": 1},
    )
    assert receipt["status"] == "failed" and receipt["code"] == "unknown_entry"
    assert (
        idn.ledger.read(
            c.NAMESPACE, c.status_key("city-agency", entry["list"], "revocation", entry["index"])
        )
        is None
    )


def test_challenges_are_single_use_and_per_verifier(issuer, holder):
    idn = issuer
    nonce = idn.call("bank-a", "POST", "/challenges", json={}).json()["nonce"]
    other = idn.call(
        "regulator", "POST", "/presentations/verify", json={"presentation": "a~", "nonce": nonce}
    )
    assert other.status_code == 404 and error(other)["code"] == "foreign_challenge"
    unknown = idn.call(
        "bank-a", "POST", "/presentations/verify", json={"presentation": "a~", "nonce": "made-up"}
    )
    assert unknown.status_code == 404
