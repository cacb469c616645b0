"""The issue's story through the HTTP API on the real embedded chain: issue, present, verify
with chain proofs, revoke, and verification fails for that reason."""

from __future__ import annotations

from typing import Any

from jwcrypto import jwk

from chain.light import verify_bundle
from services.identity import VC_CONTEXT_V2, envelope, sd_jwt, vc_jose

CLAIMS = {
    "givenName": "Mei",
    "familyName": "Chen",
    "birthDate": "1990-04-02",
    "address": {"street": "1 Harbour Rd", "city": "Metropolis"},
    "cityCode": 440300,
}


def issue(idn: Any, subject: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS, **extra}
    made = idn.call("city-agency", "POST", "/credentials", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def challenge(idn: Any, org: str = "bank-a") -> dict[str, Any]:
    made = idn.call(org, "POST", "/challenges", json={"audience": "https://bank-a.example/kyc"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def present_address(idn: Any, holder: Any, token: str) -> tuple[dict[str, Any], Any]:
    """The holder discloses only the address, bound to the bank's fresh challenge."""
    ch = challenge(idn)
    shown = sd_jwt.present(
        token,
        disclose=["credentialSubject.address"],
        holder_key=holder.key,
        nonce=ch["nonce"],
        audience=ch["audience"],
    )
    answer = idn.call(
        "bank-a",
        "POST",
        "/presentations/verify",
        json={"presentation": shown, "nonce": ch["nonce"]},
    )
    return ch, answer


def test_agency_issues_holder_discloses_bank_verifies_with_proofs_then_revocation(issuer, holder):
    idn = issuer
    issued = issue(idn, holder.did)
    assert issued["issuer"] == "did:smartcity:city-agency" and issued["format"] == "vc+sd-jwt"
    assert "Chen" not in issued["credential"].split("~")[0]  # hidden behind digests

    ch, answer = present_address(idn, holder, issued["credential"])
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["verified"] is True
    assert result["holder"] == holder.did and result["audience"] == ch["audience"]
    report = result["credentials"][0]
    assert {n: c["status"] for n, c in report["checks"].items()} == {
        "signature": "passed",
        "issuer_authorised": "passed",
        "validity_period": "passed",
        "status": "passed",
        "anchor": "passed",
        "schema": "passed",
        "holder_binding": "passed",
        "disclosures": "passed",
    }
    subject = report["claims"]["credentialSubject"]
    assert subject["address"]["city"] == "Metropolis"
    assert not {"givenName", "familyName", "birthDate"} & set(subject)
    assert report["disclosed"] == ["credentialSubject.address"]

    # Every proof verifies offline against genesis alone, and says what the checks relied on
    proven = {name: verify_bundle(bundle, idn.genesis) for name, bundle in report["proofs"].items()}
    assert set(proven) >= {
        "issuer_key",
        "issuer_authorisation",
        "anchor",
        "type",
        "status_revocation",
        "status_suspension",
    }
    assert proven["anchor"].facts["value"]["org"] == "city-agency"
    assert proven["anchor"].facts["key"] == f"cred:{issued['hash']}"
    assert proven["issuer_authorisation"].facts["value"]["types"]["ResidenceCredential"]
    assert proven["status_revocation"].facts["present"] is False  # never revoked: absence proven

    # The same presentation again is a replay
    again = idn.call(
        "bank-a", "POST", "/presentations/verify", json={"presentation": "x~", "nonce": ch["nonce"]}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "replayed"

    revoked = idn.call(
        "city-agency", "POST", f"/credentials/{issued['id']}/revoke", json={"reason": "moved_away"}
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked"] is True

    _, answer = present_address(idn, holder, issued["credential"])
    result = answer.json()
    assert answer.status_code == 200 and result["verified"] is False
    status = result["credentials"][0]["checks"]["status"]
    assert status["status"] == "failed" and "revoked" in status["message"]
    assert "moved_away" in status["message"]
    assert result["credentials"][0]["checks"]["signature"]["status"] == "passed"
    bit = verify_bundle(result["credentials"][0]["proofs"]["status_revocation"], idn.genesis)
    assert bit.facts["value"]["value"] == 1 and bit.facts["value"]["reason"] == "moved_away"

    # A revoked credential stays revoked
    twice = idn.call("city-agency", "POST", f"/credentials/{issued['id']}/revoke", json={})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_revoked"


def test_vc_jwt_es256_in_a_vp_jwt_signed_by_the_holder(issuer):
    idn = issuer
    holder_key = jwk.JWK.generate(kty="EC", crv="P-256")
    made = idn.call(
        "city-agency",
        "POST",
        "/dids",
        json={"keys": [{"publicKeyJwk": holder_key.export_public(as_dict=True)}]},
    )
    did = made.json()["did"]
    issued = issue(idn, did, format="vc+jwt", alg="ES256")
    assert issued["credential"].count(".") == 2 and "~" not in issued["credential"]
    plain = idn.call(
        "regulator", "POST", "/credentials/verify", json={"credential": issued["credential"]}
    ).json()
    assert plain["verified"] is True and plain["checks"]["disclosures"]["status"] == "skipped"

    ch = challenge(idn)
    vp = vc_jose.issue_presentation(
        {
            "@context": [VC_CONTEXT_V2],
            "type": ["VerifiablePresentation"],
            "holder": did,
            "verifiableCredential": [envelope(issued["credential"])],
        },
        holder_key,
        kid=f"{did}#key-1",
        nonce=ch["nonce"],
        audience=ch["audience"],
    )
    answer = idn.call(
        "bank-a",
        "POST",
        "/presentations/verify",
        json={"presentation": vp, "nonce": ch["nonce"], "include_proofs": False},
    )
    result = answer.json()
    assert result["verified"] is True, result
    assert result["checks"]["holder_signature"]["status"] == "passed"
    assert result["credentials"][0]["checks"]["holder_binding"]["status"] == "passed"

    # Someone else's DID cannot present it: the holder check fails
    other = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    other_did = idn.call(
        "city-agency",
        "POST",
        "/dids",
        json={"keys": [{"publicKeyJwk": other.export_public(as_dict=True)}]},
    ).json()["did"]
    ch = challenge(idn)
    stolen = vc_jose.issue_presentation(
        {
            "@context": [VC_CONTEXT_V2],
            "type": ["VerifiablePresentation"],
            "holder": other_did,
            "verifiableCredential": [envelope(issued["credential"])],
        },
        other,
        kid=f"{other_did}#key-1",
        nonce=ch["nonce"],
        audience=ch["audience"],
    )
    result = idn.call(
        "bank-a",
        "POST",
        "/presentations/verify",
        json={"presentation": stolen, "nonce": ch["nonce"]},
    ).json()
    assert result["verified"] is False
    assert result["credentials"][0]["checks"]["holder_binding"]["status"] == "failed"


def test_suspension_then_reinstatement(issuer, holder):
    idn = issuer
    issued = issue(idn, holder.did, alg="ES256")
    path = f"/credentials/{issued['id']}"
    assert idn.call("city-agency", "POST", f"{path}/suspend", json={"reason": "audit"}).json()[
        "suspended"
    ]
    report = idn.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": issued["credential"]}
    ).json()
    assert report["verified"] is False
    assert "suspended" in report["checks"]["status"]["message"]
    assert idn.call("city-agency", "POST", f"{path}/reinstate").status_code == 200
    report = idn.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": issued["credential"]}
    ).json()
    assert report["verified"] is True
    again = idn.call("city-agency", "POST", f"{path}/reinstate")
    assert again.status_code == 409 and again.json()["error"]["code"] == "unchanged"

    # The W3C status list credential reflects the chain, signed by the agency's key
    entry = issued["status"][0]
    listed = idn.call("bank-a", "GET", f"/status-lists/city-agency/{entry['list']}/suspension")
    assert listed.status_code == 200
    assert listed.json()["document"]["credentialSubject"]["encodedList"].startswith("u")
    assert listed.json()["credential"].count(".") == 2


def test_expired_credential_fails_validity_period(issuer, holder):
    issued = issue(
        issuer, holder.did, valid_from="2020-01-01T00:00:00Z", valid_until="2021-01-01T00:00:00Z"
    )
    report = issuer.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": issued["credential"]}
    ).json()
    assert report["verified"] is False
    assert report["checks"]["validity_period"]["status"] == "failed"
    assert report["checks"]["status"]["status"] == "passed"


def test_resolver_follows_the_universal_resolver_driver_interface(issuer, holder):
    idn = issuer
    answer = idn.call("bank-a", "GET", f"/1.0/identifiers/{holder.did}?proof=true")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"@context", "didDocument", "didResolutionMetadata", "didDocumentMetadata"}
    document = body["didDocument"]
    assert document["id"] == holder.did
    public = holder.key.export_public(as_dict=True)
    assert document["verificationMethod"][0]["publicKeyJwk"]["x"] == public["x"]
    assert document["authentication"] == [f"{holder.did}#key-1"]
    proven = verify_bundle(body["didResolutionMetadata"]["chainProof"], idn.genesis)
    assert proven.facts["value"]["id"] == holder.did
    assert (
        "chainProof"
        not in idn.call("bank-a", "GET", f"/1.0/identifiers/{holder.did}").json()[
            "didResolutionMetadata"
        ]
    )
    missing = idn.call("bank-a", "GET", "/1.0/identifiers/did:smartcity:nobody-here?proof=true")
    assert missing.status_code == 404
    assert missing.json()["didResolutionMetadata"]["error"] == "notFound"
    assert (
        verify_bundle(missing.json()["didResolutionMetadata"]["chainProof"], idn.genesis).facts[
            "present"
        ]
        is False
    )
    invalid = idn.call("bank-a", "GET", "/1.0/identifiers/did:web:example.com")
    assert invalid.status_code == 400
    assert invalid.json()["didResolutionMetadata"]["error"] == "invalidDid"
    issuer_doc = idn.call("bank-a", "GET", "/1.0/identifiers/did:smartcity:city-agency").json()
    algs = {vm["publicKeyJwk"]["alg"] for vm in issuer_doc["didDocument"]["verificationMethod"]}
    assert algs == {"EdDSA", "ES256"}
    assert issuer_doc["didDocumentMetadata"]["controllerOrg"] == "city-agency"
