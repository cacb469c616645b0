"""Replay protection per verifier and nonce, through HTTP.

A nonce is single-use and consumed only by a verification that ran to its report; a
presentation or proof bound to another nonce or audience is refused with a 4xx naming why, and
leaves the verifier's own nonce usable; no verifier can block another's verification.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from services.identity import (
    VC_CONTEXT_V2,
    b64url_decode,
    envelope,
    parse_json_object,
    sd_jwt,
    vc_jose,
    zkp,
)

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def issue(idn: Any, subject: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS, **extra}
    made = idn.call("city-agency", "POST", "/credentials", json=body)
    assert made.status_code == 201, made.text
    return dict(made.json())


def challenge(idn: Any, org: str, audience: str | None = None) -> dict[str, Any]:
    made = idn.call(org, "POST", "/challenges", json={"audience": audience or f"https://{org}"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def shown(holder: Any, token: str, ch: dict[str, Any], **override: Any) -> str:
    binding = {"nonce": ch["nonce"], "audience": ch["audience"], **override}
    return sd_jwt.present(
        token, disclose=["credentialSubject.givenName"], holder_key=holder.key, **binding
    )


def verify(idn: Any, org: str, presentation: str, nonce: str) -> Any:
    return idn.call(
        org, "POST", "/presentations/verify", json={"presentation": presentation, "nonce": nonce}
    )


def refused(answer: Any, status: int, code: str, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text
    assert words in answer.json()["error"]["message"], answer.text


def accepted(answer: Any) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.json()["verified"] is True, answer.json()


def test_a_presentation_replayed_under_a_fresh_nonce_is_refused_and_spends_nothing(issuer, holder):
    idn = issuer
    token = issue(idn, holder.did)["credential"]
    first = challenge(idn, "bank-a")
    presentation = shown(holder, token, first)
    accepted(verify(idn, "bank-a", presentation, first["nonce"]))

    # The same bytes again under the same nonce: spent
    refused(verify(idn, "bank-a", presentation, first["nonce"]), 409, "replayed", "already used")

    # Under a fresh nonce of the same bank, and of a second bank: signed for another nonce
    fresh, other = challenge(idn, "bank-a"), challenge(idn, "bank-b")
    refused(
        verify(idn, "bank-a", presentation, fresh["nonce"]), 422, "nonce_mismatch", "another nonce"
    )
    refused(
        verify(idn, "bank-b", presentation, other["nonce"]), 422, "nonce_mismatch", "another nonce"
    )

    # Neither refusal consumed the nonce: each bank's own holder presentation still verifies
    accepted(verify(idn, "bank-a", shown(holder, token, fresh), fresh["nonce"]))
    accepted(verify(idn, "bank-b", shown(holder, token, other), other["nonce"]))


def test_another_verifiers_nonce_or_audience_is_refused_with_the_reason(issuer, holder):
    idn = issuer
    token = issue(idn, holder.did)["credential"]
    bank_a = challenge(idn, "bank-a")

    # bank-b submits bank-a's presentation with bank-a's nonce: not its challenge
    refused(
        verify(idn, "bank-b", shown(holder, token, bank_a), bank_a["nonce"]),
        404,
        "foreign_challenge",
        "another organisation",
    )

    # The right nonce but signed for another audience
    wrong_audience = shown(holder, token, bank_a, audience="https://bank-b")
    refused(
        verify(idn, "bank-a", wrong_audience, bank_a["nonce"]),
        422,
        "audience_mismatch",
        "https://bank-a",
    )

    # A presentation without key binding, and garbage: refused, nonce untouched
    unbound = sd_jwt.present(token, disclose=["credentialSubject.givenName"])
    refused(
        verify(idn, "bank-a", unbound, bank_a["nonce"]),
        422,
        "invalid_key_binding",
        "key binding JWT",
    )
    refused(
        verify(idn, "bank-a", "not~a~presentation", bank_a["nonce"]),
        422,
        "malformed_token",
        "neither",
    )

    accepted(verify(idn, "bank-a", shown(holder, token, bank_a), bank_a["nonce"]))


def test_vp_jwt_bound_to_another_nonce_is_refused_and_the_bank_can_still_verify(issuer, holder):
    idn = issuer
    token = issue(idn, holder.did, format="vc+jwt")["credential"]
    old, new = challenge(idn, "bank-a"), challenge(idn, "bank-a")

    def vp(ch: dict[str, Any]) -> str:
        document = {
            "@context": [VC_CONTEXT_V2],
            "type": ["VerifiablePresentation"],
            "holder": holder.did,
            "verifiableCredential": [envelope(token)],
        }
        return vc_jose.issue_presentation(
            document,
            holder.key,
            kid=f"{holder.did}#key-1",
            nonce=ch["nonce"],
            audience=ch["audience"],
        )

    refused(verify(idn, "bank-a", vp(old), new["nonce"]), 422, "nonce_mismatch", "another nonce")
    accepted(verify(idn, "bank-a", vp(new), new["nonce"]))


def test_a_zk_proof_replayed_under_a_new_nonce_is_refused_without_a_500(issuer, holder):
    idn = issuer
    claims = {**CLAIMS, "cityCode": 440300}
    issued = issue(idn, holder.did, claims=claims, zk={"age": "birthDate"})
    token = sd_jwt.present(issued["credential"], disclose=[])
    opening = issued["zk_openings"]["age"]
    payload = sd_jwt.parse_sd_jwt(issued["credential"]).issuer_jwt.split(".")[1]
    signed: Any = parse_json_object(b64url_decode(payload), "payload")
    commitment = signed["credentialSubject"]["zkCommitments"]["age"]
    today = date.today()

    def prove(ch: dict[str, Any]) -> dict[str, Any]:
        return zkp.prove_age_at_least(
            commitment,
            zkp.Opening(opening["value"], int(opening["blinding"], 16)),
            min_age_years=18,
            reference=today,
            nonce=ch["nonce"],
            context=ch["audience"],
        )

    def ask(org: str, proof: dict[str, Any], nonce: str) -> Any:
        return idn.call(
            org,
            "POST",
            "/zk/verify",
            json={
                "credential": token,
                "predicate": "age_at_least",
                "min_age_years": 18,
                "reference_date": today.isoformat(),
                "proof": proof,
                "nonce": nonce,
            },
        )

    first = challenge(idn, "bank-a")
    proof = prove(first)
    accepted(ask("bank-a", proof, first["nonce"]))
    refused(ask("bank-a", proof, first["nonce"]), 409, "replayed", "already used")
    again, other = challenge(idn, "bank-a"), challenge(idn, "bank-b")
    refused(ask("bank-a", proof, again["nonce"]), 422, "proof_replayed", "another nonce")
    refused(ask("bank-b", proof, other["nonce"]), 422, "proof_replayed", "another nonce")
    accepted(ask("bank-a", prove(again), again["nonce"]))
    accepted(ask("bank-b", prove(other), other["nonce"]))
