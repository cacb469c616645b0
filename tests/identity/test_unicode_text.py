"""A JSON body whose free-form objects hold a string that is not Unicode text gets a 422 naming
it, never a 500, and nothing is written.

JSON can escape one half of a surrogate pair ("\\ud800"); the parser reads it into a Python
string that no UTF-8 encoder accepts. Typed string fields refuse it already; the objects a
service passes through as they are (a credential's claims, a JSON Schema, a public JWK, a ZK
proof) once carried it to whatever encoded them first, and issuing or verifying answered 500.
Hypothesis puts such a string, as a key or a value, anywhere in each of them.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._crafted import holding_lone
from tests.identity.test_service_errors import credential_rows
from tests.identity.test_service_zk_keys import challenged_age_proof, hidden, zk_credential

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def raw_post(idn: Any, org: str, path: str, body: dict[str, Any]) -> Any:
    """POST `body` as JSON with \\u escapes (httpx's own encoder refuses a lone surrogate)."""
    headers = {**idn.headers(org), "content-type": "application/json"}
    return idn.client.post(f"/identity{path}", headers=headers, content=json.dumps(body).encode())


def refused(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(f"body.{field}: holds a string that is not Unicode text")


SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.data())
def test_issuing_schemas_and_keys_refuse_a_lone_surrogate_and_write_nothing(issuer, holder, data):
    height = issuer.ledger.height()
    claims = data.draw(holding_lone(CLAIMS))
    body = {"type": "ResidenceCredential", "subject": holder.did, "claims": claims}
    refused(raw_post(issuer, "city-agency", "/credentials", body), "claims")
    schema = data.draw(holding_lone({"type": "object"}))
    refused(
        raw_post(issuer, "city-agency", "/types", {"name": "Permit", "schema": schema}), "schema"
    )
    jwk = data.draw(holding_lone({"kty": "OKP", "crv": "Ed25519", "x": "A" * 43}))
    refused(
        raw_post(issuer, "city-agency", "/dids", {"keys": [{"publicKeyJwk": jwk}]}),
        "keys.0.publicKeyJwk",
    )
    assert issuer.ledger.height() == height  # nothing anchored
    assert credential_rows(issuer) == 0


def test_a_zk_proof_holding_a_lone_surrogate_is_refused_and_its_nonce_kept(issuer, holder):
    idn = issuer
    issued = zk_credential(idn, holder)
    # One challenge for every crafted proof: a refusal that spent its nonce would leave the
    # honest proof unverifiable under it at the end (a proof costs a second of pairings)
    ch, proof = challenged_age_proof(idn, issued)
    body = {
        "credential": hidden(issued),
        "predicate": "age_at_least",
        "min_age_years": 18,
        "nonce": ch["nonce"],
    }

    @SETTINGS
    @given(data=st.data())
    def check(data: Any) -> None:
        crafted = {**body, "proof": data.draw(holding_lone(proof))}
        refused(raw_post(idn, "bank-a", "/zk/verify", crafted), "proof")

    check()
    # The nonce is not spent: the honest proof still verifies under it
    answer = raw_post(idn, "bank-a", "/zk/verify", {**body, "proof": proof})
    assert answer.status_code == 200 and answer.json()["verified"] is True, answer.text
