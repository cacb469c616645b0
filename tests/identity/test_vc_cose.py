"""VC-COSE (`application/vc+cose`, COSE_Sign1): the vc-jose-cose-test-suite's COSE cases 27-35.

Each case runs `vc issue|verify --feature credential_cose|presentation_cose` as the suite's
runner does. Case 29 also verifies the suite's own signed fixture with the suite's public key,
so the format is checked against another implementation, not only against itself.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from click.testing import CliRunner

from services.identity import envelope, vc_cose
from services.identity.cli import vc

# From w3c/vc-jose-cose-test-suite tests/input: credential-minimal-cose-signed.json, verified
# with the public half of cid-p256.json (test vectors, used here as data).
SUITE_SIGNED = (
    "0oRYVqQBJgNuYXBwbGljYXRpb24vdmMEWCs3M3ZvTVhGTm1ObE9FcHVZQ1NKbGg4ZU4wZHNjeWtvTzZnQnVrZ1JTMXVV"
    "EHNhcHBsaWNhdGlvbi92Yytjb3NloFkB8nsiQGNvbnRleHQiOlsiaHR0cHM6Ly93d3cudzMub3JnL25zL2NyZWRlbnRp"
    "YWxzL3YyIiwiaHR0cHM6Ly93d3cudzMub3JnL25zL2NyZWRlbnRpYWxzL2V4YW1wbGVzL3YyIl0sInR5cGUiOlsiVmVy"
    "aWZpYWJsZUNyZWRlbnRpYWwiLCJFeGFtcGxlQWx1bW5pQ3JlZGVudGlhbCJdLCJpZCI6Imh0dHA6Ly91bml2ZXJzaXR5"
    "LmV4YW1wbGUvY3JlZGVudGlhbHMvMTg3MiIsImlzc3VlciI6Imh0dHBzOi8vZXhhbXBsZS5pc3N1ZXIvdmMtam9zZS1j"
    "b3NlIiwidmFsaWRGcm9tIjoiMjAxMC0wMS0wMVQxOToyMzoyNFoiLCJjcmVkZW50aWFsU3ViamVjdCI6eyJkZWdyZWUi"
    "OnsibmFtZSI6IkJhY2hlbG9yIG9mIFNjaWVuY2UgYW5kIEFydHMiLCJ0eXBlIjoiQmFjaGVsb3JEZWdyZWUifSwiaWQi"
    "OiJkaWQ6ZXhhbXBsZToxMjMifSwiY3JlZGVudGlhbFNjaGVtYSI6eyJpZCI6Imh0dHBzOi8vZXhhbXBsZS5vcmcvZXhh"
    "bXBsZXMvZGVncmVlLmpzb24iLCJ0eXBlIjoiSnNvblNjaGVtYSJ9fVhAs3W1WN83yVu/HoEyYMy7Tcmub9zL55PDnfcx"
    "5yG42BTe0gdQ+E0V9B3B1gMZyt9dDEGZVJynd8vztWVr7d4Kkw"
)
SUITE_P256 = {
    "id": "https://example.issuer/6c427e8392ab4057b93356fbb9022ecb#key-1",
    "type": "JsonWebKey",
    "publicKeyJwk": {
        "alg": "ES256",
        "crv": "P-256",
        "kty": "EC",
        "kid": "73voMXFNmNlOEpuYCSJlh8eN0dscykoO6gBukgRS1uU",
        "x": "WfTi93YuhsQxKbD0ftnjOXJndqhnJ5kgDV-ZDGyrhBQ",
        "y": "qUd_55EjX0mjKZ6W6mF4UXVYTQ41K6jfdnYFwN5uPyk",
    },
}


@pytest.fixture
def contract(tmp_path: Path, vm: Any) -> Any:
    """Run one contract call: returns (result object, exit code)."""

    def call(fn: str, feature: str, data: Any, key: Any) -> Any:
        source = tmp_path / f"input-{fn}-{feature}.txt"
        source.write_text(json.dumps(data) if isinstance(data, dict) else data + "\n")
        key_file = tmp_path / "vm.json"
        key_file.write_text(json.dumps(vm(key) if isinstance(key, str) else key))
        out = tmp_path / "out.json"
        outcome = CliRunner().invoke(
            vc,
            [
                fn,
                "--input",
                str(source),
                "--key",
                str(key_file),
                "--feature",
                feature,
                "--output",
                str(out),
            ],
        )
        return json.loads(out.read_text()), outcome.exit_code

    return call


def signed(vm: Any, name: str, document: dict[str, Any], presentation: bool = False) -> str:
    key = vm(name)
    issue = vc_cose.issue_presentation if presentation else vc_cose.issue_credential
    return issue(document, key["secretKeyJwk"], kid=key["id"])


def rewrap(token: str, header: dict[int, Any]) -> str:
    """The same COSE_Sign1 with protected header members replaced (signature kept)."""
    message = cbor2.loads(base64.b64decode(token))
    protected, unprotected, payload, signature = message.value
    changed = {**cbor2.loads(protected), **header}
    return base64.b64encode(
        cbor2.dumps(
            cbor2.CBORTag(18, [cbor2.dumps(changed), dict(unprotected), payload, signature])
        )
    ).decode()


def test_27_credential_issuance_round_trips(contract, credential, vm):
    result, code = contract("issue", "credential_cose", credential, "ed25519")
    assert (result["result"], code) == ("success", 0), result
    message = cbor2.loads(base64.b64decode(result["data"]))
    assert message.tag == 18 and len(message.value) == 4
    protected = cbor2.loads(message.value[0])
    assert protected[1] == -8 and protected[3] == "application/vc"
    assert protected[16] == "application/vc+cose" and protected[4] == vm("ed25519")["id"].encode()
    checked, code = contract("verify", "credential_cose", result["data"], "ed25519")
    assert (checked["result"], code) == ("success", 0), checked
    assert json.loads(checked["data"]) == credential


def test_28_presentation_issuance_envelopes_cose_as_base64(contract, credential, presentation, vm):
    inner = signed(vm, "p256", credential)
    document = presentation(envelope(inner, "application/vc+cose"))
    assert document["verifiableCredential"][0]["id"].startswith("data:application/vc+cose;base64,")
    result, code = contract("issue", "presentation_cose", document, "p384")
    assert (result["result"], code) == ("success", 0), result
    checked, code = contract("verify", "presentation_cose", result["data"], "p384")
    assert (checked["result"], code) == ("success", 0), checked


def test_29_the_suites_own_signed_credential_verifies(contract):
    result, code = contract("verify", "credential_cose", SUITE_SIGNED, SUITE_P256)
    assert (result["result"], code) == ("success", 0), result
    assert json.loads(result["data"])["issuer"] == "https://example.issuer/vc-jose-cose"


def test_30_a_credential_that_is_not_base64_fails(contract, credential, vm):
    raw = base64.b64decode(signed(vm, "p256", credential))
    result, code = contract("verify", "credential_cose", raw.hex() + "!", "p256")
    assert (result["result"], code) == ("failure", 1), result


def test_31_presentation_with_several_cose_credentials_verifies(
    contract, credential, presentation, vm
):
    entries = [envelope(signed(vm, k, credential), "application/vc+cose") for k in ("p256", "p384")]
    token = signed(vm, "p384", presentation(*entries), presentation=True)
    result, code = contract("verify", "presentation_cose", token, "p384")
    assert (result["result"], code) == ("success", 0), result


def test_32_an_invalid_signature_fails(contract, credential, vm):
    token = signed(vm, "p384", credential)
    message = cbor2.loads(base64.b64decode(token))
    protected, unprotected, payload, signature = message.value
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    bad = base64.b64encode(
        cbor2.dumps(cbor2.CBORTag(18, [protected, dict(unprotected), payload, forged]))
    ).decode()
    result, code = contract("verify", "credential_cose", bad, "p384")
    assert (result["result"], code) == ("failure", 1) and "invalid_signature" in result["data"]
    raw = base64.b64decode(SUITE_SIGNED + "=" * (-len(SUITE_SIGNED) % 4))
    tampered = base64.b64encode(raw.replace(b"Bachelor", b"Bachelar")).decode()
    assert contract("verify", "credential_cose", tampered, SUITE_P256)[0]["result"] == "failure"


def test_33_34_bad_media_types_fail(contract, credential, presentation, vm):
    for feature, token in (
        ("credential_cose", signed(vm, "p384", credential)),
        ("presentation_cose", signed(vm, "p384", presentation(), presentation=True)),
    ):
        for header in ({16: "very/bad"}, {3: "really/bad"}):
            result, _ = contract("verify", feature, rewrap(token, header), "p384")
            assert result["result"] == "failure", (feature, header, result)
        # a credential is not a presentation, nor the other way round
        other = "presentation_cose" if feature == "credential_cose" else "credential_cose"
        assert contract("verify", other, token, "p384")[0]["result"] == "failure"


def test_35_presentation_with_unsecured_or_unenveloped_credentials_fails(
    contract, credential, presentation, vm
):
    for entries in (
        [credential],
        [{"id": "data:application/vc+cose;base64,AAAA", "type": "EnvelopedVerifiableCredential"}],
    ):
        token = vc_cose._sign(
            presentation(*entries), vm("p384")["secretKeyJwk"], None, vc_cose.PRESENTATION
        )
        result, code = contract("verify", "presentation_cose", token, "p384")
        assert (result["result"], code) == ("failure", 1), (entries, result)


def test_the_alg_must_be_the_keys(contract, credential, vm):
    token = rewrap(signed(vm, "p256", credential), {1: -8})
    result, _ = contract("verify", "credential_cose", token, "p256")
    assert result["result"] == "failure" and "unsupported_algorithm" in result["data"]


# -- the identity service: vc+cose as its third format, through HTTP ----------------------------

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def issue_cose(idn: Any, subject: str) -> dict[str, Any]:
    made = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={
            "type": "ResidenceCredential",
            "subject": subject,
            "claims": CLAIMS,
            "format": "vc+cose",
            "alg": "ES256",
        },
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def verify_http(idn: Any, token: str) -> dict[str, Any]:
    answer = idn.call("bank-a", "POST", "/credentials/verify", json={"credential": token})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_service_issues_and_verifies_vc_cose_against_the_chain(issuer, holder):
    idn = issuer
    issued = issue_cose(idn, holder.did)
    assert issued["format"] == "vc+cose" and "." not in issued["credential"]
    report = verify_http(idn, issued["credential"])
    assert report["verified"] is True, report["checks"]
    assert report["format"] == "vc+cose" and report["subject"] == holder.did
    assert report["checks"]["disclosures"]["status"] == "skipped"
    assert {"issuer_key", "anchor", "issuer_authorisation"} <= set(report["proofs"])

    # presented by its holder in a vp+jwt, enveloped as base64
    from services.identity import vc_jose

    ch = idn.call("bank-a", "POST", "/challenges", json={}).json()
    vp = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "holder": holder.did,
        "verifiableCredential": [envelope(issued["credential"], "application/vc+cose")],
    }
    shown = vc_jose.issue_presentation(
        vp, holder.key, kid=f"{holder.did}#key-1", nonce=ch["nonce"], audience=ch["audience"]
    )
    answer = idn.call(
        "bank-a",
        "POST",
        "/presentations/verify",
        json={"presentation": shown, "nonce": ch["nonce"]},
    )
    assert answer.status_code == 200 and answer.json()["verified"] is True, answer.text

    # a flipped signature bit, then revocation: each fails with its reason
    message = cbor2.loads(base64.b64decode(issued["credential"]))
    protected, unprotected, payload, signature = message.value
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    forged_message = cbor2.CBORTag(18, [protected, dict(unprotected), payload, flipped])
    forged = base64.b64encode(cbor2.dumps(forged_message)).decode()
    assert "invalid_signature" in verify_http(idn, forged)["checks"]["signature"]["message"]
    revoked = idn.call("city-agency", "POST", f"/credentials/{issued['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    after = verify_http(idn, issued["credential"])
    assert after["verified"] is False and "revoked" in after["checks"]["status"]["message"]


@pytest.mark.parametrize(
    "token",
    [
        "AAAA",
        "0oQ",
        "2BKEQEBAQA",
        base64.b64encode(b"\xd2\x84" + b"\x9f" * 5000).decode(),
        base64.b64encode(cbor2.dumps([1, 2, 3, 4])).decode(),
        "@@@@",
    ],
    ids=["short", "truncated", "not-cose", "deep-indefinite", "untagged-ints", "not-base64"],
)
def test_malformed_cose_is_a_4xx_not_a_500(identity, token):
    answer = identity.call("bank-a", "POST", "/credentials/verify", json={"credential": token})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "malformed_token"
