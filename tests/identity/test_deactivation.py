"""A deactivated DID issues nothing, registers no keys, changes no status; and an authorised
issuer's DID is deactivated only after governance has removed it as an issuer."""

from __future__ import annotations

from typing import Any

from jwcrypto import jwk

AGENCY_DID = "did:smartcity:city-agency"
CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def issue(idn: Any, subject: str) -> Any:
    body = {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS}
    return idn.call("city-agency", "POST", "/credentials", json=body)


def error(answer: Any) -> dict[str, Any]:
    return dict(answer.json()["error"])


def remove_issuer(idn: Any) -> None:
    idn.govern("remove_issuer", {"org": "city-agency", "types": ["ResidenceCredential"]})


def test_an_issuer_cannot_deactivate_its_own_did_while_governance_lists_it(issuer, holder):
    idn = issuer
    answer = idn.call("city-agency", "DELETE", f"/dids/{AGENCY_DID}")
    assert answer.status_code == 409, answer.text
    assert error(answer)["code"] == "issuer_active"
    assert "remove_issuer" in error(answer)["message"]
    # Nor by writing to the chain directly: the contract holds the same rule
    receipt = idn.chain_call("city-agency", "identity", "deactivate_did", {"msid": "city-agency"})
    assert receipt["status"] == "failed" and receipt["code"] == "issuer_active", receipt
    # The DID stays active and the agency goes on issuing credentials that verify
    made = issue(idn, holder.did)
    assert made.status_code == 201, made.text
    checked = idn.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": made.json()["credential"]}
    )
    assert checked.json()["verified"] is True, checked.json()


def test_after_removal_and_deactivation_nothing_is_issued_registered_or_changed(issuer, holder):
    idn = issuer
    before = issue(idn, holder.did)
    assert before.status_code == 201, before.text
    remove_issuer(idn)
    gone = idn.call("city-agency", "DELETE", f"/dids/{AGENCY_DID}")
    assert gone.status_code == 200, gone.text
    assert gone.json()["didDocumentMetadata"]["deactivated"] is True

    refusals = {
        "issue credentials": issue(idn, holder.did),
        "register keys": idn.call("city-agency", "POST", "/issuers/me/keys", json={}),
        "change a credential's status": idn.call(
            "city-agency", "POST", f"/credentials/{before.json()['id']}/revoke"
        ),
    }
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519").export_public(as_dict=True)
    refusals["register keys "] = idn.call(
        "city-agency", "POST", "/dids", json={"keys": [{"publicKeyJwk": key}]}
    )
    for action, answer in refusals.items():
        assert answer.status_code == 410, (action, answer.text)
        assert error(answer)["code"] == "did_deactivated"
        assert (
            f"{AGENCY_DID} is deactivated: it cannot {action.strip()}" in error(answer)["message"]
        )

    # The contract refuses the same writes sent straight to the chain
    entry = before.json()["status"][0]
    for method, args in [
        (
            "anchor_credentials",
            {"items": [{"hash": "ab" * 32, "type": "ResidenceCredential", "list": 0, "index": 1}]},
        ),
        (
            "set_status",
            {"list": entry["list"], "index": entry["index"], "purpose": "revocation", "value": 1},
        ),
    ]:
        receipt = idn.chain_call("city-agency", "identity", method, args)
        assert receipt["status"] == "failed" and receipt["code"] == "did_deactivated", receipt

    # What it issued while authorised still verifies: keys and authorisation at that height
    checked = idn.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": before.json()["credential"]}
    )
    assert checked.json()["verified"] is True, checked.json()


def test_governance_may_deactivate_an_issuers_did_once_it_is_removed(issuer):
    idn = issuer
    # Still an issuer: the governance proposal to deactivate fails in the contract
    proposal = idn.chain_call(
        "city-agency",
        "governance",
        "propose",
        {
            "action": "invoke",
            "params": {
                "contract": "identity",
                "method": "deactivate_did",
                "args": {"msid": "city-agency"},
            },
        },
    )
    vote = idn.chain_call(
        "regulator", "governance", "vote", {"proposal": proposal["tx"], "approve": True}
    )
    assert vote["status"] == "failed" and vote["code"] == "issuer_active", vote

    remove_issuer(idn)
    idn.govern("deactivate_did", {"msid": "city-agency"})
    did = idn.call("bank-a", "GET", f"/dids/{AGENCY_DID}")
    assert did.json()["didDocumentMetadata"]["deactivated"] is True
