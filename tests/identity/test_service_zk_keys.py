"""ZK predicates through the API, key rotation on the chain, the contract's own rules, the vault."""

from __future__ import annotations

import copy
import stat
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jwcrypto import jwk
from sqlalchemy import select

from services.identity import contract as c
from services.identity import sd_jwt, zkp
from services.identity.models import IssuedCredential, IssuerKey


def today() -> date:
    """The service's date (UTC, its clock), read when a proof is made, not when tests load."""
    return datetime.now(UTC).date()


CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02", "cityCode": 440300}


def zk_credential(idn: Any, holder: Any) -> dict[str, Any]:
    made = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={
            "type": "ResidenceCredential",
            "subject": holder.did,
            "claims": CLAIMS,
            "zk": {"age": "birthDate", "residency": "cityCode"},
        },
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def opening(issued: dict[str, Any], predicate: str) -> zkp.Opening:
    raw = issued["zk_openings"][predicate]
    return zkp.Opening(value=raw["value"], blinding=int(raw["blinding"], 16))


def commitment(issued: dict[str, Any], predicate: str) -> str:
    payload = sd_jwt.parse_sd_jwt(issued["credential"]).issuer_jwt.split(".")[1]
    from services.identity import b64url_decode, parse_json_object

    claims: Any = parse_json_object(b64url_decode(payload), "payload")
    return str(claims["credentialSubject"]["zkCommitments"][predicate])


def hidden(issued: dict[str, Any]) -> str:
    """The credential as the holder shows it for a ZK proof: no claim disclosed."""
    return sd_jwt.present(issued["credential"], disclose=[])


def challenged_age_proof(
    idn: Any, issued: dict[str, Any], reference: date | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh challenge of bank-a's, and the holder's proof of being 18 made for it (on
    `reference`, by default the service's date)."""
    ch = dict(idn.call("bank-a", "POST", "/challenges", json={}).json())
    proof = zkp.prove_age_at_least(
        commitment(issued, "age"),
        opening(issued, "age"),
        min_age_years=18,
        reference=reference or today(),
        nonce=ch["nonce"],
        context=ch["audience"],
    )
    return ch, proof


def ask(idn: Any, **body: Any) -> Any:
    return idn.call("bank-a", "POST", "/zk/verify", json=body)


def test_age_and_residency_proofs_verify_without_revealing_the_claims(issuer, holder):
    idn = issuer
    issued = zk_credential(idn, holder)
    shown = hidden(issued)
    assert "1990" not in shown and "440300" not in shown
    ch, proof = challenged_age_proof(idn, issued)
    answer = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=18,
        proof=proof,
        nonce=ch["nonce"],
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["verified"] is True, result["checks"]
    assert set(result["checks"]) >= {"proof", "signature", "status", "anchor", "issuer_authorised"}

    # The same proof again: its nonce is spent
    replay = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=18,
        proof=proof,
        nonce=ch["nonce"],
    )
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "replayed"

    ch = idn.call("bank-a", "POST", "/challenges", json={}).json()
    proof = zkp.prove_residency(
        commitment(issued, "residency"),
        opening(issued, "residency"),
        city_code=440300,
        nonce=ch["nonce"],
        context=ch["audience"],
    )
    result = ask(
        idn,
        credential=shown,
        predicate="residency",
        city_code=440300,
        proof=proof,
        nonce=ch["nonce"],
    ).json()
    assert result["verified"] is True


def test_forged_replayed_relabelled_and_repointed_proofs_fail(issuer, holder):
    idn = issuer
    issued = zk_credential(idn, holder)
    shown = hidden(issued)

    def fresh() -> dict[str, Any]:
        return dict(idn.call("bank-a", "POST", "/challenges", json={}).json())

    # A proof made for an older nonce (replayed into a new challenge)
    _, proof = challenged_age_proof(idn, issued)
    new = fresh()
    refused = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=18,
        proof=proof,
        nonce=new["nonce"],
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "proof_replayed"
    assert "another nonce" in refused.json()["error"]["message"]

    # A wrong statement: the proof is for 18, the verifier asks 21
    ch, proof = challenged_age_proof(idn, issued)
    result = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=21,
        proof=proof,
        nonce=ch["nonce"],
    ).json()
    assert (
        result["verified"] is False and "statement_mismatch" in result["checks"]["proof"]["message"]
    )

    # A forged response
    ch, proof = challenged_age_proof(idn, issued)
    forged = copy.deepcopy(proof)
    forged["responses"][0][1] = forged["responses"][1][1]
    result = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=18,
        proof=forged,
        nonce=ch["nonce"],
    ).json()
    assert result["verified"] is False and result["checks"]["proof"]["status"] == "failed"

    # A tampered commitment: a proof about the holder's own commitment to another birth date
    ch = fresh()
    mine, my_opening = zkp.commit(zkp.days_since_epoch(date(1970, 1, 1)))
    proof = zkp.prove_age_at_least(
        mine,
        my_opening,
        min_age_years=18,
        reference=today(),
        nonce=ch["nonce"],
        context=ch["audience"],
    )
    result = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=18,
        proof=proof,
        nonce=ch["nonce"],
    ).json()
    assert result["verified"] is False
    assert "commitment_mismatch" in result["checks"]["proof"]["message"]

    # A valid proof over a revoked credential fails on status
    assert (
        idn.call(
            "city-agency", "POST", f"/credentials/{issued['id']}/revoke", json={"reason": "fraud"}
        ).status_code
        == 200
    )
    ch, proof = challenged_age_proof(idn, issued)
    result = ask(
        idn,
        credential=shown,
        predicate="age_at_least",
        min_age_years=18,
        proof=proof,
        nonce=ch["nonce"],
    ).json()
    assert result["verified"] is False and result["checks"]["proof"]["status"] == "passed"
    assert result["checks"]["status"]["status"] == "failed"


def test_a_proof_for_an_earlier_date_answers_and_a_later_one_is_refused(issuer, holder):
    """Old enough on a date is old enough since: a proof made before midnight verifies after
    it, naming the date proved; a proof for a later date does not. Dates a month from the
    service's own keep the test off the clock, midnight included."""
    idn = issuer
    issued = zk_credential(idn, holder)
    shown = hidden(issued)

    def check(reference: date, years: int = 18, **asked: Any) -> Any:
        ch, proof = challenged_age_proof(idn, issued, reference)
        answer = ask(
            idn,
            credential=shown,
            predicate="age_at_least",
            min_age_years=years,
            proof=proof,
            nonce=ch["nonce"],
            **asked,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    before, after = today() - timedelta(days=30), today() + timedelta(days=30)
    result = check(before)  # the service's own date, whichever day it is by then
    assert result["verified"] is True, result["checks"]
    assert result["statement"]["proved_on"] == before.isoformat()

    result = check(after)
    assert result["verified"] is False
    message = result["checks"]["proof"]["message"]
    assert (
        message.startswith("statement_mismatch: ") and f"reference date {after}, after" in message
    )

    asked = date(2026, 1, 15)
    result = check(asked - timedelta(days=1), reference_date=asked.isoformat())
    assert result["verified"] is True
    assert result["statement"] == {
        "min_age_years": 18,
        "reference_date": "2026-01-15",
        "proved_on": "2026-01-14",
    }
    result = check(asked, reference_date=(asked - timedelta(days=1)).isoformat())
    assert result["verified"] is False
    assert "reference date 2026-01-15, after 2026-01-14" in result["checks"]["proof"]["message"]

    # Another age: the refusal names what was asked (21 on the verifier's date), and the report
    # keeps the question, with no date proved
    result = check(asked - timedelta(days=1), years=21, reference_date=asked.isoformat())
    assert result["verified"] is False
    assert result["statement"] == {"min_age_years": 21, "reference_date": "2026-01-15"}
    message = result["checks"]["proof"]["message"]
    assert message.startswith("statement_mismatch: ")
    assert message.endswith("not {'min_age_years': 21, 'reference_date': '2026-01-15', 'bits': 16}")


def test_issuer_key_rotation_keeps_old_credentials_verifiable(issuer, holder):
    idn = issuer
    before = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={"type": "ResidenceCredential", "subject": holder.did, "claims": CLAIMS},
    ).json()
    rotated = idn.call("city-agency", "POST", "/issuers/me/keys", json={"algs": ["EdDSA"]})
    assert rotated.status_code == 201
    assert rotated.json()["didDocumentMetadata"]["versionId"] == "2"
    after = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={"type": "ResidenceCredential", "subject": holder.did, "claims": CLAIMS},
    ).json()
    kid = lambda t: sd_jwt.parse_sd_jwt(t).issuer_jwt  # noqa: E731
    assert kid(before["credential"]).split(".")[0] != kid(after["credential"]).split(".")[0]
    for issued in (before, after):
        report = idn.call(
            "bank-a", "POST", "/credentials/verify", json={"credential": issued["credential"]}
        ).json()
        assert report["verified"] is True, report["checks"]
    # The retired key's window on the chain ends at the rotation
    document = rotated.json()["didDocument"]
    assert len(document["verificationMethod"]) == 2  # the new EdDSA key and the kept ES256 key
    with idn.suite.services["identity"].state.sessions() as session:
        retired = session.scalars(select(IssuerKey).where(~IssuerKey.active)).one()
    record = idn.ledger.read(c.NAMESPACE, c.vm_key("city-agency", retired.kid.split("#")[1]))
    assert record["removed"] is not None


def test_holder_did_rotation_and_deactivation(identity, holder):
    idn = identity
    new_key = jwk.JWK.generate(kty="EC", crv="P-256")
    keys = [{"id": "key-2", "publicKeyJwk": new_key.export_public(as_dict=True)}]
    stale = idn.call(
        "city-agency", "PUT", f"/dids/{holder.did}/keys", json={"keys": keys, "version": 7}
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    rotated = idn.call(
        "city-agency", "PUT", f"/dids/{holder.did}/keys", json={"keys": keys, "version": 1}
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["didDocument"]["authentication"] == [f"{holder.did}#key-2"]
    reuse = idn.call(
        "city-agency",
        "PUT",
        f"/dids/{holder.did}/keys",
        json={
            "keys": [{"id": "key-1", "publicKeyJwk": new_key.export_public(as_dict=True)}],
            "version": 2,
        },
    )
    assert reuse.status_code == 409 and reuse.json()["error"]["code"] == "key_id_reused"
    gone = idn.call("city-agency", "DELETE", f"/dids/{holder.did}")
    assert gone.status_code == 200 and gone.json()["didDocumentMetadata"]["deactivated"] is True
    resolved = idn.call("bank-a", "GET", f"/1.0/identifiers/{holder.did}")
    assert resolved.status_code == 410
    assert "verificationMethod" not in resolved.json()["didDocument"]
    again = idn.call("city-agency", "DELETE", f"/dids/{holder.did}")
    assert again.status_code == 410


def test_contract_rules_hold_without_the_service(identity):
    idn = identity
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519").export_public(as_dict=True)
    vm = {"id": "key-1", "publicKeyJwk": {k: key[k] for k in ("kty", "crv", "x")}}
    named = idn.chain_call(
        "city-agency", "identity", "create_did", {"msid": "mei-chen", "verification_methods": [vm]}
    )
    assert named["code"] == "bad_did"  # a holder DID cannot carry a name
    squat = idn.chain_call(
        "city-agency", "identity", "create_did", {"msid": "bank-a", "verification_methods": [vm]}
    )
    assert squat["status"] == "failed"
    own = idn.chain_call(
        "bank-a", "identity", "create_did", {"msid": "bank-a", "verification_methods": [vm]}
    )
    assert own["status"] == "ok"  # every org may publish its own DID
    not_gov = idn.chain_call(
        "city-agency",
        "identity",
        "admit_issuer",
        {"org": "city-agency", "types": ["ResidenceCredential"]},
    )
    assert not_gov["code"] == "forbidden"
    by_bank = idn.chain_call(
        "bank-a", "identity", "register_type", {"name": "BankType", "schema_hash": "00" * 32}
    )
    assert by_bank["code"] == "forbidden"


def test_personal_fields_are_sealed_and_the_key_file_is_private(issuer, holder):
    idn = issuer
    issued = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={"type": "ResidenceCredential", "subject": holder.did, "claims": CLAIMS},
    ).json()
    key_file = idn.suite.data / "identity" / "vault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with idn.suite.services["identity"].state.sessions() as session:
        row = session.get(IssuedCredential, issued["id"])
        assert row is not None and b"Chen" not in row.sealed_claims
        private = session.scalars(select(IssuerKey)).first()
        assert private is not None and b'"d"' not in private.sealed_private_jwk
    kept = idn.call("city-agency", "GET", f"/credentials/{issued['id']}").json()
    assert kept["claims"]["familyName"] == "Chen"  # the agency reads back what it must keep
    assert idn.call("bank-a", "GET", f"/credentials/{issued['id']}").status_code == 403
    # Nothing personal on the chain: the anchor holds a hash, type and status entry only
    anchor = idn.ledger.read(c.NAMESPACE, c.cred_key(issued["hash"]))
    assert set(anchor) == {"org", "type", "height", "time_ms", "list", "index"}
