"""SD-JWT (RFC 9901): disclosures, holder selection, key binding, and each way it can be wrong."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from services.identity import (
    b64url_encode,
    digest_of,
    errors,
    make_disclosure,
    parse_compact,
    sd_jwt,
    sign_compact,
)
from services.identity.credentials.vc_jose import envelope

NOW = time.time()
PATHS = [
    "credentialSubject.firstName",
    "credentialSubject.lastName",
    "credentialSubject.birthDate",
    "credentialSubject.address",
    "credentialSubject.address.street",
    "credentialSubject.phoneNumbers[0]",
]


@pytest.fixture
def issued(vm, selective_credential) -> tuple[str, dict[str, Any], dict[str, Any]]:
    issuer, holder = vm("p256"), vm("ed25519", "did:example:citizen-42")
    token = sd_jwt.issue_sd_credential(
        selective_credential,
        issuer["secretKeyJwk"],
        disclose=PATHS,
        kid=issuer["id"],
        holder_key=holder["publicKeyJwk"],
        decoys=2,
    )
    return token, issuer, holder


def _payload(token: str) -> dict[str, Any]:
    return json.loads(parse_compact(token.split("~")[0]).payload)


def test_issuer_jwt_hides_claims_behind_sorted_digests(issued):
    token, _, holder = issued
    payload = _payload(token)
    subject = payload["credentialSubject"]
    assert {"firstName", "lastName", "birthDate", "address"}.isdisjoint(subject)
    assert len(subject["_sd"]) == 4 + 2  # four hidden claims and two decoys
    assert subject["_sd"] == sorted(subject["_sd"])
    assert set(subject["phoneNumbers"][0]) == {"..."}
    assert subject["phoneNumbers"][1]["type"] == "mobile"
    assert payload["_sd_alg"] == "sha-256"
    assert payload["cnf"]["jwk"]["x"] == holder["publicKeyJwk"]["x"]
    header = parse_compact(token.split("~")[0]).header
    assert (header["typ"], header["cty"]) == ("vc+sd-jwt", "vc")
    assert token.endswith("~")


def test_full_sd_jwt_rebuilds_the_credential(issued, selective_credential):
    token, issuer, _ = issued
    verified = sd_jwt.verify_sd_credential(token, issuer["publicKeyJwk"], now=NOW)
    assert verified.document == selective_credential
    assert set(verified.disclosed) == set(PATHS)


def test_holder_discloses_only_what_it_chooses_with_key_binding(issued):
    token, issuer, holder = issued
    assert set(sd_jwt.disclosable_paths(token)) == set(PATHS)
    shown = sd_jwt.present(
        token,
        disclose={"credentialSubject.firstName", "credentialSubject.address.street"},
        issued_at=int(NOW),
        holder_key=holder["secretKeyJwk"],
        nonce="n-1",
        audience="https://bank.example",
    )
    verified = sd_jwt.verify_sd_credential(
        shown,
        issuer["publicKeyJwk"],
        require_key_binding=True,
        nonce="n-1",
        audience="https://bank.example",
        now=NOW,
    )
    subject: Any = verified.claims["credentialSubject"]
    assert subject["firstName"] == "Mei"
    assert subject["address"] == {
        "street": "1 Harbour Rd",
        "city": "Metropolis",
        "postalCode": "518000",
    }
    assert {"lastName", "birthDate"}.isdisjoint(subject)
    assert subject["phoneNumbers"] == [{"number": "+86-755-0000-0002", "type": "mobile"}]
    assert verified.key_bound
    parent_disclosed = "credentialSubject.address" in verified.disclosed
    assert parent_disclosed  # a nested claim brings its parent disclosure along


def test_holder_can_select_with_a_predicate(issued):
    token, issuer, _ = issued
    shown = sd_jwt.present(token, disclose=lambda path: path.endswith("Name"))
    verified = sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"])
    assert verified.disclosed == ("credentialSubject.firstName", "credentialSubject.lastName")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"nonce": "other"}, errors.NonceMismatch),
        ({"audience": "https://other.example"}, errors.AudienceMismatch),
    ],
)
def test_key_binding_is_for_one_verifier_challenge(issued, kwargs, error):
    token, issuer, holder = issued
    shown = sd_jwt.present(
        token,
        disclose=[],
        issued_at=int(NOW),
        holder_key=holder["secretKeyJwk"],
        nonce="n-1",
        audience="https://bank.example",
    )
    with pytest.raises(error):
        sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"], **kwargs)


def test_missing_key_binding_is_refused_when_required(issued):
    token, issuer, _ = issued
    shown = sd_jwt.present(token, disclose=["credentialSubject.firstName"])
    with pytest.raises(errors.KeyBindingError, match="required"):
        sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"], require_key_binding=True)
    with pytest.raises(errors.KeyBindingError, match="nonce"):
        sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"], nonce="n-1")


def test_key_binding_by_another_key_or_over_other_disclosures_fails(issued, vm):
    token, issuer, holder = issued
    thief = sd_jwt.present(
        token, disclose=[], issued_at=int(NOW), holder_key=vm("p384")["secretKeyJwk"], nonce="n"
    )
    with pytest.raises(errors.KeyBindingError, match="does not verify"):
        sd_jwt.verify_sd_credential(thief, issuer["publicKeyJwk"], nonce="n")
    shown = sd_jwt.present(
        token,
        disclose=["credentialSubject.firstName"],
        issued_at=int(NOW),
        holder_key=holder["secretKeyJwk"],
        nonce="n",
    )
    base, kb = shown.rsplit("~", 1)
    extra = sd_jwt.disclosable_paths(token)["credentialSubject.lastName"].encoded
    with pytest.raises(errors.KeyBindingError, match="sd_hash"):
        sd_jwt.verify_sd_credential(f"{base}~{extra}~{kb}", issuer["publicKeyJwk"], nonce="n")


def test_stale_key_binding_is_refused(issued):
    token, issuer, holder = issued
    shown = sd_jwt.present(
        token, disclose=[], holder_key=holder["secretKeyJwk"], nonce="n", issued_at=int(NOW) - 3600
    )
    with pytest.raises(errors.KeyBindingError, match="stale"):
        sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"], nonce="n", now=NOW)


def test_key_binding_without_cnf_is_refused(vm, selective_credential):
    issuer, holder = vm("p256"), vm("ed25519")
    token = sd_jwt.issue_sd_credential(selective_credential, issuer["secretKeyJwk"], disclose=[])
    shown = sd_jwt.present(
        token, disclose=[], issued_at=int(NOW), holder_key=holder["secretKeyJwk"]
    )
    with pytest.raises(errors.KeyBindingError, match="cnf"):
        sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"])


def _resign(
    token: str,
    issuer: dict[str, Any],
    payload: dict[str, Any],
    disclosures: list[str],
    typ: str = "vc+sd-jwt",
) -> str:
    jwt = sign_compact(payload, issuer["secretKeyJwk"], {"typ": typ, "cty": "vc"})
    return "~".join([jwt, *disclosures]) + "~"


def test_unreferenced_disclosure_is_refused(issued):
    token, issuer, _ = issued
    stray = make_disclosure("nickname", "M").encoded
    with pytest.raises(errors.UnreferencedDisclosure):
        sd_jwt.verify_sd_credential(token + stray + "~", issuer["publicKeyJwk"])


def test_duplicate_disclosure_is_refused(issued):
    token, issuer, _ = issued
    first = token.split("~")[1]
    with pytest.raises(errors.DuplicateDisclosure):
        sd_jwt.verify_sd_credential(token + first + "~", issuer["publicKeyJwk"])


def test_duplicate_digest_in_payload_is_refused(issued):
    token, issuer, _ = issued
    payload = _payload(token)
    subject = payload["credentialSubject"]
    subject["_sd"] = [*subject["_sd"], subject["_sd"][0]]
    forged = _resign(token, issuer, payload, token.split("~")[1:-1])
    with pytest.raises(errors.DuplicateDigest):
        sd_jwt.verify_sd_credential(forged, issuer["publicKeyJwk"])


@pytest.mark.parametrize(
    "bad",
    [
        b64url_encode(b"not json"),
        b64url_encode(b'{"an": "object"}'),
        b64url_encode(b'["salt", "_sd", 1]'),
        b64url_encode(b'[1, "name", 1]'),
        "***",
    ],
)
def test_malformed_disclosure_is_refused(issued, bad):
    token, issuer, _ = issued
    with pytest.raises(errors.InvalidDisclosure):
        sd_jwt.verify_sd_credential(token + bad + "~", issuer["publicKeyJwk"])


def test_disclosure_that_does_not_fit_its_place_is_refused(issued):
    token, issuer, _ = issued
    payload = _payload(token)
    element = make_disclosure(None, "an array element")  # [salt, value] placed in an object
    payload["credentialSubject"]["_sd"].append(element.digest)
    clash = make_disclosure("id", "did:example:someone-else")  # would overwrite a visible claim
    payload["credentialSubject"]["_sd"].append(clash.digest)
    for disclosure in (element, clash):
        forged = _resign(token, issuer, payload, [disclosure.encoded])
        with pytest.raises(errors.InvalidDisclosure):
            sd_jwt.verify_sd_credential(forged, issuer["publicKeyJwk"])


def test_other_digest_algorithms_are_refused(issued):
    token, issuer, _ = issued
    payload = {**_payload(token), "_sd_alg": "md5"}
    with pytest.raises(errors.InvalidDisclosure, match="_sd_alg"):
        sd_jwt.verify_sd_credential(_resign(token, issuer, payload, []), issuer["publicKeyJwk"])


def test_tampered_disclosure_value_is_unreferenced(issued):
    token, issuer, _ = issued
    disclosure = sd_jwt.disclosable_paths(token)["credentialSubject.firstName"]
    forged = make_disclosure("firstName", "Mallory", salt=disclosure.salt)
    assert forged.digest != digest_of(disclosure.encoded)
    shown = sd_jwt.present(token, disclose=[]) + forged.encoded + "~"
    with pytest.raises(errors.UnreferencedDisclosure):
        sd_jwt.verify_sd_credential(shown, issuer["publicKeyJwk"])


@pytest.mark.parametrize("path", ["@context", "type", "iss", "cnf"])
def test_claims_that_must_stay_visible_cannot_be_hidden(vm, selective_credential, path):
    with pytest.raises(errors.UndisclosableClaim):
        sd_jwt.issue_sd_credential(
            selective_credential, vm("p256")["secretKeyJwk"], disclose=[path]
        )


@pytest.mark.parametrize(
    "path",
    [
        "credentialSubject.nothing",
        "credentialSubject.phoneNumbers[9]",
        "credentialSubject..x",
        "credentialSubject._sd",
    ],
)
def test_bad_disclosure_paths_are_refused(vm, selective_credential, path):
    with pytest.raises(errors.DisclosureError):
        sd_jwt.issue_sd_credential(
            selective_credential, vm("p256")["secretKeyJwk"], disclose=[path]
        )


def test_bad_media_type_and_signature_are_refused(issued, vm):
    token, issuer, _ = issued
    payload = _payload(token)
    with pytest.raises(errors.InvalidMediaType):
        sd_jwt.verify_sd_credential(
            _resign(token, issuer, payload, [], typ="bad+typ"), issuer["publicKeyJwk"]
        )
    with pytest.raises(errors.InvalidMediaType):
        sd_jwt.verify_sd_jwt_vc(token, issuer["publicKeyJwk"])
    with pytest.raises(errors.UnsupportedAlgorithm):
        sd_jwt.verify_sd_credential(token, vm("ed25519")["publicKeyJwk"])
    jwt, rest = token.split("~", 1)
    head, body, sig = jwt.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    with pytest.raises(errors.InvalidSignature):
        sd_jwt.verify_sd_credential(f"{head}.{body}.{flipped}~{rest}", issuer["publicKeyJwk"])


@pytest.mark.parametrize("text", ["", "~", "abc", "a.b.c~~x~", "eyJ9.e30.sig"])
def test_malformed_sd_jwt_is_refused(issued, text):
    _, issuer, _ = issued
    with pytest.raises(errors.MalformedToken):
        sd_jwt.verify_sd_credential(text, issuer["publicKeyJwk"])


def test_sd_jwt_vc_profile_uses_dc_sd_jwt_and_vct(vm):
    issuer, holder = vm("ed25519"), vm("p256")
    claims = {
        "iss": "https://identity.city.example",
        "vct": "https://identity.city.example/pid",
        "given_name": "Mei",
        "age_over_18": True,
        "nationalities": ["CN", "SG"],
    }
    token = sd_jwt.issue_sd_jwt_vc(
        claims,
        issuer["secretKeyJwk"],
        disclose=["given_name", "age_over_18", "nationalities[1]"],
        holder_key=holder["publicKeyJwk"],
    )
    assert parse_compact(token.split("~")[0]).header["typ"] == "dc+sd-jwt"
    shown = sd_jwt.present(
        token,
        disclose=["age_over_18"],
        issued_at=int(NOW),
        holder_key=holder["secretKeyJwk"],
        nonce="n",
        audience="https://shop.example",
    )
    verified = sd_jwt.verify_sd_jwt_vc(
        shown,
        issuer["publicKeyJwk"],
        require_key_binding=True,
        nonce="n",
        audience="https://shop.example",
        now=NOW,
    )
    assert verified.claims["age_over_18"] is True
    assert verified.claims["nationalities"] == ["CN"]
    assert "given_name" not in verified.claims
    with pytest.raises(errors.InvalidMediaType):
        sd_jwt.verify_sd_credential(token, issuer["publicKeyJwk"])
    with pytest.raises(errors.InvalidClaims, match="vct"):
        sd_jwt.issue_sd_jwt_vc({"iss": "x"}, issuer["secretKeyJwk"], disclose=[])
    with pytest.raises(errors.UndisclosableClaim):
        sd_jwt.issue_sd_jwt_vc(claims, issuer["secretKeyJwk"], disclose=["vct"])


def test_sd_presentation_hides_enveloped_credentials(vm, issued, presentation):
    token, _, _ = issued
    holder = vm("p384", "did:example:citizen-42")
    document = presentation(envelope(token, "application/vc+sd-jwt"))
    vp = sd_jwt.issue_sd_presentation(
        document,
        holder["secretKeyJwk"],
        kid=holder["id"],
        disclose=["holder", "verifiableCredential[0]"],
    )
    assert parse_compact(vp.split("~")[0]).header["typ"] == "vp+sd-jwt"
    _, credentials = sd_jwt.verify_sd_presentation(vp, holder["publicKeyJwk"])
    assert credentials[0].media_type == "application/vc+sd-jwt"
    assert credentials[0].token == token
    hidden, none = sd_jwt.verify_sd_presentation(
        sd_jwt.present(vp, disclose=[]), holder["publicKeyJwk"]
    )
    assert none == ()
    assert "holder" not in hidden.claims
