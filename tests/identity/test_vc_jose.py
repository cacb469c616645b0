"""VC-JOSE: vc+jwt credentials and vp+jwt presentations, and the error each bad input gets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.identity import b64url_decode, errors, parse_compact, sign_compact, vc_jose

NOW = time.time()


@pytest.mark.parametrize("curve", ["ed25519", "p256", "p384", "p521"])
def test_issued_credential_verifies_and_carries_spec_headers(curve, vm, credential):
    method = vm(curve)
    token = vc_jose.issue_credential(credential, method["secretKeyJwk"], kid=method["id"])
    header = parse_compact(token).header
    assert (header["typ"], header["cty"], header["kid"]) == ("vc+jwt", "vc", method["id"])
    verified = vc_jose.verify_credential(token, method["publicKeyJwk"], now=NOW)
    assert verified.claims["iss"] == credential["issuer"]
    assert verified.document == credential


def test_issuer_object_sets_iss_to_its_id(vm, credential):
    credential["issuer"] = {"id": "did:example:agency", "name": "Civil Registry"}
    method = vm("p256")
    token = vc_jose.issue_credential(credential, method["secretKeyJwk"])
    assert vc_jose.verify_credential(token, method["publicKeyJwk"]).claims["iss"] == (
        "did:example:agency"
    )


def test_wrong_key_is_an_algorithm_mismatch(vm, credential):
    token = vc_jose.issue_credential(credential, vm("p521")["secretKeyJwk"])
    with pytest.raises(errors.UnsupportedAlgorithm):
        vc_jose.verify_credential(token, vm("ed25519")["publicKeyJwk"])


def test_tampered_payload_fails_signature(vm, credential):
    method = vm("ed25519")
    token = vc_jose.issue_credential(credential, method["secretKeyJwk"])
    head, _, sig = token.split(".")
    other = vc_jose.issue_credential({**credential, "id": "urn:uuid:other"}, method["secretKeyJwk"])
    with pytest.raises(errors.InvalidSignature):
        vc_jose.verify_credential(f"{head}.{other.split('.')[1]}.{sig}", method["publicKeyJwk"])


def _signed(claims: dict[str, Any], method: dict[str, Any], **header: Any) -> str:
    return sign_compact(claims, method["secretKeyJwk"], {"typ": "vc+jwt", "cty": "vc", **header})


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ({"typ": "bad+typ"}, errors.InvalidMediaType),
        ({"cty": "bad+cty"}, errors.InvalidMediaType),
        ({"typ": "vp+jwt"}, errors.InvalidMediaType),
    ],
)
def test_bad_media_type_is_refused(vm, credential, header, error):
    method = vm("ed25519")
    token = _signed({**credential, "iss": credential["issuer"]}, method, **header)
    with pytest.raises(error):
        vc_jose.verify_credential(token, method["publicKeyJwk"])


def test_application_prefix_on_typ_is_accepted(vm, credential):
    method = vm("p256")
    token = _signed({**credential, "iss": credential["issuer"]}, method, typ="application/vc+jwt")
    vc_jose.verify_credential(token, method["publicKeyJwk"])


@pytest.mark.parametrize("claim", ["vc", "vp"])
def test_vc_and_vp_claims_are_refused(vm, credential, claim):
    method = vm("ed25519")
    token = _signed({**credential, "iss": credential["issuer"], claim: "oops"}, method)
    with pytest.raises(errors.InvalidClaims, match=claim):
        vc_jose.verify_credential(token, method["publicKeyJwk"])
    with pytest.raises(errors.InvalidClaims):
        vc_jose.issue_credential({**credential, claim: {}}, method["secretKeyJwk"])


def test_iss_must_match_issuer(vm, credential):
    method = vm("ed25519")
    token = _signed({**credential, "iss": "https://someone.else.example"}, method)
    with pytest.raises(errors.IssuerMismatch):
        vc_jose.verify_credential(token, method["publicKeyJwk"])


def test_without_iss_kid_must_be_an_absolute_url(vm, credential):
    method = vm("ed25519")
    with pytest.raises(errors.InvalidKeyId):
        vc_jose.verify_credential(_signed(credential, method, kid="key-1"), method["publicKeyJwk"])
    verified = vc_jose.verify_credential(
        _signed(credential, method, kid=method["id"]), method["publicKeyJwk"]
    )
    assert verified.kid == method["id"]


def test_unknown_top_level_members_are_refused_at_issuance_but_ignored_on_verify(vm, credential):
    method = vm("p521")
    with pytest.raises(errors.UnknownCredentialProperty, match="badExtension"):
        vc_jose.issue_credential({**credential, "badExtension": {"huh": 1}}, method["secretKeyJwk"])
    token = _signed({**credential, "iss": credential["issuer"], "badExtension": 1}, method)
    assert "badExtension" in vc_jose.verify_credential(token, method["publicKeyJwk"]).claims


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"@context": ["https://www.w3.org/2018/credentials/v1"]}, "@context"),
        ({"type": ["SomethingElse"]}, "type"),
        ({"issuer": 42}, "issuer"),
        ({"credentialSubject": {}}, "credentialSubject"),
        ({"validFrom": "yesterday"}, "validFrom"),
        ({"validFrom": "2024-01-01T00:00:00"}, "time zone"),
    ],
)
def test_data_model_violations_are_refused(vm, credential, change, message):
    with pytest.raises(errors.InvalidClaims, match=message):
        vc_jose.issue_credential({**credential, **change}, vm("p256")["secretKeyJwk"])


def test_validity_period_is_checked_when_a_clock_is_given(vm, credential):
    method = vm("ed25519")
    credential["validUntil"] = "2025-01-01T00:00:00Z"
    token = vc_jose.issue_credential(credential, method["secretKeyJwk"])
    vc_jose.verify_credential(token, method["publicKeyJwk"], now=None)
    with pytest.raises(errors.TokenExpired):
        vc_jose.verify_credential(token, method["publicKeyJwk"], now=NOW)
    with pytest.raises(errors.TokenNotYetValid):
        vc_jose.verify_credential(token, method["publicKeyJwk"], now=1_600_000_000)


@pytest.mark.parametrize("text", ["", "a.b", "{}", "!!.??.##", "eyJhbGciOiJFZERTQSJ9.e30"])
def test_unsecured_or_garbled_input_is_malformed(vm, text):
    with pytest.raises(errors.MalformedToken):
        vc_jose.verify_credential(text, vm("ed25519")["publicKeyJwk"])


def test_a_private_key_is_needed_to_sign_and_keys_are_validated(vm, credential):
    with pytest.raises(errors.InvalidKey):
        vc_jose.issue_credential(credential, vm("p256")["publicKeyJwk"])
    with pytest.raises(errors.InvalidKey):
        vc_jose.issue_credential(credential, {"kty": "nope"})
    with pytest.raises(errors.UnsupportedAlgorithm):
        vc_jose.issue_credential(credential, {**vm("p256")["secretKeyJwk"], "alg": "ES384"})


# -- presentations ---------------------------------------------------------------------------


def _holder_vm(vm: Any) -> dict[str, Any]:
    return vm("p384")


def test_presentation_binds_nonce_and_audience(vm, credential, presentation):
    issuer, holder = vm("p256"), _holder_vm(vm)
    vc_token = vc_jose.issue_credential(credential, issuer["secretKeyJwk"], kid=issuer["id"])
    document = presentation(vc_jose.envelope(vc_token))
    vp = vc_jose.issue_presentation(
        document,
        holder["secretKeyJwk"],
        kid=holder["id"],
        nonce="n-123",
        audience="https://bank.example",
    )
    assert parse_compact(vp).header["typ"] == "vp+jwt"
    result = vc_jose.verify_presentation(
        vp, holder["publicKeyJwk"], nonce="n-123", audience="https://bank.example", now=NOW
    )
    assert (result.nonce, result.claims["iss"]) == ("n-123", document["holder"])
    [enveloped] = result.credentials
    assert (enveloped.media_type, enveloped.token) == ("application/vc+jwt", vc_token)
    inner = vc_jose.verify_credential(enveloped.token, issuer["publicKeyJwk"], now=NOW)
    assert inner.document == credential
    assert len(result.replay_key) == 64
    with pytest.raises(errors.NonceMismatch):
        vc_jose.verify_presentation(vp, holder["publicKeyJwk"], nonce="n-456")
    with pytest.raises(errors.AudienceMismatch):
        vc_jose.verify_presentation(vp, holder["publicKeyJwk"], audience="https://other.example")


def test_replayed_presentation_has_the_same_replay_key(vm, credential, presentation):
    holder = _holder_vm(vm)
    vp = vc_jose.issue_presentation(presentation(), holder["secretKeyJwk"], nonce="n")
    first = vc_jose.verify_presentation(vp, holder["publicKeyJwk"], nonce="n")
    again = vc_jose.verify_presentation(vp, holder["publicKeyJwk"], nonce="n")
    fresh = vc_jose.issue_presentation(presentation(), holder["secretKeyJwk"], nonce="n2")
    assert first.replay_key == again.replay_key
    assert vc_jose.verify_presentation(fresh, holder["publicKeyJwk"]).replay_key != first.replay_key


def test_stale_or_expired_presentation_is_refused(vm, presentation):
    holder = _holder_vm(vm)
    vp = vc_jose.issue_presentation(
        presentation(), holder["secretKeyJwk"], issued_at=int(NOW) - 600, ttl_s=300
    )
    with pytest.raises(errors.TokenExpired):
        vc_jose.verify_presentation(vp, holder["publicKeyJwk"], now=NOW)
    young = vc_jose.issue_presentation(
        presentation(), holder["secretKeyJwk"], issued_at=int(NOW) - 200, ttl_s=3600
    )
    with pytest.raises(errors.TokenExpired, match="older"):
        vc_jose.verify_presentation(young, holder["publicKeyJwk"], now=NOW, max_age_s=120)


@pytest.mark.parametrize(
    "entry",
    [
        {
            "@context": "https://www.w3.org/ns/credentials/v2",
            "id": "not-a-credential",
            "type": "EnvelopedVerifiableCredential",
        },
        {
            "@context": "https://www.w3.org/ns/credentials/v2",
            "id": "data:application/vc+jwt,xyz",
            "type": "EnvelopedVerifiableCredential",
        },
        {
            "@context": "https://www.w3.org/ns/credentials/v2",
            "id": "data:text/plain,hello",
            "type": "EnvelopedVerifiableCredential",
        },
        {
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "type": ["VerifiableCredential"],
            "issuer": "https://x.example",
            "credentialSubject": {"id": "did:example:1"},
        },
    ],
)
def test_presentation_with_unsecured_credential_is_refused(vm, presentation, entry):
    holder = _holder_vm(vm)
    claims = {**presentation(entry), "iss": "did:example:citizen-42"}
    vp = sign_compact(claims, holder["secretKeyJwk"], {"typ": "vp+jwt", "cty": "vp"})
    with pytest.raises(errors.InvalidEnvelopedCredential):
        vc_jose.verify_presentation(vp, holder["publicKeyJwk"])


def test_presentation_without_holder_needs_url_kid(vm, presentation):
    holder = _holder_vm(vm)
    with pytest.raises(errors.InvalidKeyId):
        vc_jose.issue_presentation(presentation(holder=None), holder["secretKeyJwk"], kid="k1")
    vp = vc_jose.issue_presentation(
        presentation(holder=None), holder["secretKeyJwk"], kid=holder["id"]
    )
    assert "iss" not in vc_jose.verify_presentation(vp, holder["publicKeyJwk"]).claims


def test_b64url_decoding_is_strict():
    with pytest.raises(errors.MalformedToken):
        b64url_decode("ab+/")
    assert b64url_decode("aGk") == b"hi"
