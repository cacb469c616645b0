"""The vc-jose-cose-test-suite's JOSE and SD-JWT cases (1-26), replayed with our own fixtures.

Each case runs `vc issue|verify --input --key --feature --output [--sd]` exactly as the suite's
runner does and checks the `result` it writes. Inputs mirror the suite's files (same shapes and
defects) but are generated here with fresh keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services.identity import sd_jwt, sign_compact, vc_jose
from services.identity.cli import vc

HOLDER = "https://identity.city.example/agencies/civil-registry"  # the suite presents as issuer


@pytest.fixture
def contract(tmp_path: Path, vm) -> Any:
    """Run one contract call: returns (result object, exit code)."""

    def call(fn: str, feature: str, data: Any, key: str, sd: list[str] | None = None) -> Any:
        source = tmp_path / f"input-{fn}-{feature}.{'json' if isinstance(data, dict) else 'txt'}"
        source.write_text(json.dumps(data) if isinstance(data, dict) else data + "\n")
        key_file = tmp_path / f"vm-{key}.json"
        key_file.write_text(json.dumps(vm(key)))
        out = tmp_path / "out.json"
        args = [
            fn,
            "--input",
            str(source),
            "--key",
            str(key_file),
            "--feature",
            feature,
            "--output",
            str(out),
        ]
        if sd is not None:
            args += ["--sd", json.dumps(sd)]
        outcome = CliRunner().invoke(vc, args)
        return json.loads(out.read_text()), outcome.exit_code

    return call


def _issue(contract, feature, document, key, sd=None) -> str:
    result, code = contract("issue", feature, document, key, sd)
    assert (result["result"], code) == ("success", 0), result
    return str(result["data"])


def _verify(contract, feature, token, key) -> str:
    result, _ = contract("verify", feature, token, key)
    return str(result["result"])


def _raw(claims: dict[str, Any], vm_: dict[str, Any], **header: Any) -> str:
    return sign_compact(claims, vm_["secretKeyJwk"], header)


def _presentation(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://www.w3.org/ns/credentials/examples/v2",
        ],
        "id": "urn:uuid:3978344f-0000-4c3a-a978-8fcaba3903c5",
        "type": ["VerifiablePresentation"],
        "holder": HOLDER,
        "verifiableCredential": list(entries),
    }


@pytest.fixture
def full_credential(credential) -> dict[str, Any]:
    """credential-full.json: every optional VCDM member."""
    return {
        **credential,
        "validUntil": "2030-01-01T00:00:00Z",
        "credentialStatus": {
            "id": "https://identity.city.example/status/3#94567",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "94567",
            "statusListCredential": "https://identity.city.example/status/3",
        },
        "evidence": [
            {"id": "https://identity.city.example/evidence/1", "type": ["DocumentVerification"]}
        ],
        "termsOfUse": [
            {
                "id": "https://identity.city.example/terms/1",
                "type": "https://identity.city.example/terms/v1",
            }
        ],
        "refreshService": {
            "id": "https://identity.city.example/refresh/1",
            "type": "ManualRefreshService2018",
        },
        "relatedResource": [
            {"id": "https://identity.city.example/logo.png", "digestSRI": "sha384-abc"}
        ],
    }


@pytest.fixture
def multiple(contract, credential, selective_credential) -> dict[str, Any]:
    """presentation-multiple.json: vc+jwt, vc+sd-jwt and vc+cose enveloped credentials."""
    jose = _issue(contract, "credential_jose", credential, "p256")
    sd = _issue(
        contract, "credential_sdjwt", selective_credential, "p384", ["credentialSubject.firstName"]
    )
    cose = vc_jose.envelope("0oRYVqQBJgNuYXBwbGljYXRpb24vdmM", "application/vc+cose")
    return _presentation(
        vc_jose.envelope(jose), vc_jose.envelope(sd, "application/vc+sd-jwt"), cose
    )


# -- JOSE issuance (cases 1-5) -----------------------------------------------------------------


def test_01_basic_credential_issuance(contract, credential):
    token = _issue(contract, "credential_jose", credential, "p256")
    assert _verify(contract, "credential_jose", token, "p256") == "success"


def test_02_credential_issuance_with_all_optional_fields(contract, full_credential):
    token = _issue(contract, "credential_jose", full_credential, "p384")
    assert _verify(contract, "credential_jose", token, "p384") == "success"


def test_03_basic_presentation_issuance(contract):
    # Like the suite's input, the enveloped token is truncated: issuance checks the envelope only.
    document = _presentation(vc_jose.envelope("yJraWQiOiJFeEhr.eyJAY29udGV4dCI6.B5Nb"))
    token = _issue(contract, "presentation_jose", document, "p256")
    assert _verify(contract, "presentation_jose", token, "p256") == "failure"


def test_04_complex_presentation_issuance(contract, multiple):
    token = _issue(contract, "presentation_jose", multiple, "p521")
    assert _verify(contract, "presentation_jose", token, "p521") == "success"


def test_05_issuance_with_unknown_extensions_fails(contract, credential):
    document = {**credential, "badExtension": {"huh": "what?"}, "anotherBadOne": {"oh": "no!"}}
    result, code = contract("issue", "credential_jose", document, "p521")
    assert (result["result"], code) == ("failure", 1)
    assert "badExtension" in result["data"]


# -- JOSE verification (cases 6-16) --------------------------------------------------------------


def test_06_basic_credential_verification(contract, credential):
    token = _issue(contract, "credential_jose", credential, "p256")
    result, code = contract("verify", "credential_jose", token, "p256")
    assert (result["result"], code) == ("success", 0)
    assert json.loads(result["data"]) == credential


def test_07_presentation_verification(contract, multiple):
    token = _issue(contract, "presentation_jose", multiple, "p384")
    assert _verify(contract, "presentation_jose", token, "p384") == "success"


def test_08_issuer_match_verification(contract, credential, vm):
    # As in the suite's fixture: iss = issuer, jti = id, and an RFC 3339 (non-numeric) iat.
    claims = {
        **credential,
        "iss": credential["issuer"],
        "jti": credential["id"],
        "iat": "2010-01-01T19:23:24Z",
    }
    token = _raw(claims, vm("ed25519"), typ="vc+jwt", cty="vc", kid="key-4")
    assert _verify(contract, "credential_jose", token, "ed25519") == "success"
    mismatched = _raw(
        {**claims, "iss": "https://impostor.example"}, vm("ed25519"), typ="vc+jwt", cty="vc"
    )
    assert _verify(contract, "credential_jose", mismatched, "ed25519") == "failure"


def test_09_verification_with_unknown_extensions_signed_by_another_key(contract, credential, vm):
    claims = {**credential, "iss": credential["issuer"], "badExtension": {"huh": "what?"}}
    token = _raw(claims, vm("p521"), typ="vc+jwt", cty="vc")
    assert _verify(contract, "credential_jose", token, "ed25519") == "failure"


def test_10_unsecured_credential_verification(contract, credential):
    assert _verify(contract, "credential_jose", json.dumps(credential), "ed25519") == "failure"


def test_11_unsecured_presentation_verification(contract):
    document = json.dumps(_presentation())
    assert _verify(contract, "presentation_jose", document, "ed25519") == "failure"


def test_12_credential_with_invalid_signature(contract, credential):
    head, body, sig = _issue(contract, "credential_jose", credential, "ed25519").split(".")
    shuffled = sig[20:] + sig[:20]
    assert _verify(contract, "credential_jose", f"{head}.{body}.{shuffled}", "ed25519") == "failure"


def test_13_credential_with_invalid_media_type(contract, credential, vm):
    claims = {**credential, "iss": credential["issuer"]}
    token = _raw(claims, vm("ed25519"), typ="bad+typ", cty="bad+cty")
    assert _verify(contract, "credential_jose", token, "ed25519") == "failure"


def test_14_presentation_with_invalid_media_type(contract, vm):
    claims = {**_presentation(), "iss": HOLDER}
    token = _raw(claims, vm("ed25519"), typ="bad+typ", cty="bad+cty")
    assert _verify(contract, "presentation_jose", token, "ed25519") == "failure"


def test_15_credential_with_vc_and_vp_claims(contract, credential, vm):
    claims = {**credential, "iss": credential["issuer"], "vc": "oops", "vp": "nooo"}
    token = _raw(claims, vm("ed25519"), typ="vc+jwt", cty="vc")
    assert _verify(contract, "credential_jose", token, "ed25519") == "failure"


def test_16_presentation_with_invalid_credential(contract, vm):
    bad = {
        "@context": "https://www.w3.org/ns/credentials/v2",
        "id": "not-a-credential",
        "type": "EnvelopedVerifiableCredential",
    }
    # Signed correctly and with the right media type: only the credential is wrong.
    token = _raw(
        {**_presentation(bad), "iss": HOLDER, "exp": 1734310020},
        vm("ed25519"),
        typ="vp+jwt",
        cty="vp",
    )
    assert _verify(contract, "presentation_jose", token, "ed25519") == "failure"
    good = _raw(
        {**_presentation(), "iss": HOLDER, "exp": 1734310020}, vm("ed25519"), typ="vp+jwt", cty="vp"
    )
    assert _verify(contract, "presentation_jose", good, "ed25519") == "success"  # no clock


# -- SD-JWT issuance (cases 17-19) -------------------------------------------------------------


def test_17_basic_sd_jwt_credential_issuance(contract, selective_credential):
    paths = ["credentialSubject.firstName", "credentialSubject.lastName"]
    token = _issue(contract, "credential_sdjwt", selective_credential, "p384", paths)
    assert set(sd_jwt.disclosable_paths(token)) == set(paths)
    assert _verify(contract, "credential_sdjwt", token, "p384") == "success"


def test_18_complex_sd_jwt_credential_issuance(contract, selective_credential):
    paths = [
        "credentialSubject.address.street",
        "credentialSubject.address.city",
        "credentialSubject.phoneNumbers[0]",
    ]
    token = _issue(contract, "credential_sdjwt", selective_credential, "p521", paths)
    assert set(sd_jwt.disclosable_paths(token)) == set(paths)
    assert _verify(contract, "credential_sdjwt", token, "p521") == "success"


def test_19_sd_jwt_presentation_issuance(contract, selective_credential):
    inner = _issue(
        contract, "credential_sdjwt", selective_credential, "p384", ["credentialSubject.firstName"]
    )
    document = _presentation(vc_jose.envelope(inner, "application/vc+sd-jwt"))
    token = _issue(
        contract, "presentation_sdjwt", document, "p384", ["holder", "verifiableCredential[0]"]
    )
    assert set(sd_jwt.disclosable_paths(token)) == {"holder", "verifiableCredential[0]"}


# -- SD-JWT verification (cases 20-26) ---------------------------------------------------------


def test_20_basic_sd_jwt_credential_verification(contract, selective_credential):
    token = _issue(
        contract,
        "credential_sdjwt",
        selective_credential,
        "p384",
        ["credentialSubject.firstName", "credentialSubject.lastName"],
    )
    partial = sd_jwt.present(token, disclose=["credentialSubject.firstName"])
    result, _ = contract("verify", "credential_sdjwt", partial, "p384")
    assert result["result"] == "success"
    subject = json.loads(result["data"])["credentialSubject"]
    assert subject["firstName"] == "Mei"
    assert "lastName" not in subject


def test_21_complex_sd_jwt_credential_verification(contract, selective_credential):
    token = _issue(
        contract,
        "credential_sdjwt",
        selective_credential,
        "p521",
        [
            "credentialSubject.address.street",
            "credentialSubject.address",
            "credentialSubject.phoneNumbers[0]",
        ],
    )
    assert _verify(contract, "credential_sdjwt", token, "p521") == "success"


def test_22_sd_jwt_presentation_verification(contract, credential):
    inner = _issue(contract, "credential_jose", credential, "ed25519")
    document = _presentation(vc_jose.envelope(inner))
    token = _issue(contract, "presentation_sdjwt", document, "p384", ["holder"])
    assert _verify(contract, "presentation_sdjwt", token, "p384") == "success"


def test_23_sd_jwt_credential_with_invalid_signature(contract, selective_credential):
    token = _issue(
        contract, "credential_sdjwt", selective_credential, "p384", ["credentialSubject.firstName"]
    )
    jwt, rest = token.split("~", 1)
    head, body, sig = jwt.split(".")
    broken = f"{head}.{body}.{sig[32:]}{sig[:32]}~{rest}"
    assert _verify(contract, "credential_sdjwt", broken, "p384") == "failure"


def test_24_sd_jwt_credential_with_invalid_media_type(contract, credential, vm):
    claims = {**credential, "iss": credential["issuer"], "_sd": []}
    token = _raw(claims, vm("ed25519"), typ="bad+typ", cty="bad+cty") + "~"
    assert _verify(contract, "credential_sdjwt", token, "ed25519") == "failure"


def test_25_sd_jwt_presentation_with_invalid_media_type(contract, vm):
    token = _raw({**_presentation(), "iss": HOLDER}, vm("ed25519"), typ="bad+typ") + "~"
    assert _verify(contract, "presentation_sdjwt", token, "ed25519") == "failure"


def test_26_sd_jwt_presentation_with_invalid_credential(contract, vm):
    bad = {
        "@context": "https://www.w3.org/ns/credentials/v2",
        "id": "bad-credential",
        "type": "EnvelopedVerifiableCredential",
    }
    token = _raw({**_presentation(bad), "iss": HOLDER}, vm("p521"), typ="vp+sd-jwt", cty="vp")
    assert _verify(contract, "presentation_sdjwt", token + "~", "p521") == "failure"


# -- the contract's own edges ----------------------------------------------------------------


def test_unknown_feature_and_unusable_key_file_are_errors(contract, credential, tmp_path):
    result, code = contract("issue", "credential_bbs", credential, "p256")
    assert (result["result"], code) == ("error", 2)
    source, out = tmp_path / "c.json", tmp_path / "o.json"
    source.write_text(json.dumps(credential))
    (tmp_path / "vm.json").write_text('{"id": "x"}')
    CliRunner().invoke(
        vc,
        [
            "issue",
            "--input",
            str(source),
            "--key",
            str(tmp_path / "vm.json"),
            "--feature",
            "credential_jose",
            "--output",
            str(out),
        ],
    )
    assert json.loads(out.read_text())["result"] == "error"
    result, _ = contract("issue", "credential_sdjwt", credential, "p256", sd=None)
    assert result["result"] == "success"  # no --sd: nothing hidden


def test_bad_sd_argument_is_an_error(tmp_path, vm, credential):
    source, key, out = tmp_path / "c.json", tmp_path / "vm.json", tmp_path / "o.json"
    source.write_text(json.dumps(credential))
    key.write_text(json.dumps(vm("p256")))
    args = [
        "issue",
        "--input",
        str(source),
        "--key",
        str(key),
        "--feature",
        "credential_sdjwt",
        "--output",
        str(out),
        "--sd",
        '{"a": 1}',
    ]
    CliRunner().invoke(vc, args)
    assert json.loads(out.read_text())["result"] == "error"
