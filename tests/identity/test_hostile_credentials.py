"""Crafted credentials get a 4xx with a reason or a failed check, never a 500.

The attacker needs no issuer: a citizen's own wallet key is registered on the chain, so a
credential with `iss` set to the holder's DID and signed by that key passes the signature check
and reaches every reader of the VCDM 2.0 fields behind it. Hypothesis puts arbitrary JSON
(NaN, huge integers, deep nesting, wrong shapes) at each field the service reads.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.identity import (
    VC_CONTEXT_V2,
    envelope,
    make_disclosable,
    sd_jwt,
    sign_compact,
    vc_jose,
)

BASE_URL = "http://127.0.0.1:8000/identity"
SRI = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def credential_for(holder_did: str) -> dict[str, Any]:
    """A well-shaped VCDM 2.0 credential the holder signs about itself, as the service issues."""
    status = [
        {
            "id": f"{BASE_URL}/status-lists/city-agency/0/{p}#7",
            "type": "BitstringStatusListEntry",
            "statusPurpose": p,
            "statusListIndex": "7",
            "statusListCredential": f"{BASE_URL}/status-lists/city-agency/0/{p}",
        }
        for p in ("revocation", "suspension")
    ]
    return {
        "@context": [VC_CONTEXT_V2],
        "id": "urn:uuid:6f1c7c1e-0000-4000-8000-000000000001",
        "type": ["VerifiableCredential", "ResidenceCredential"],
        "issuer": holder_did,
        "name": "Residence",
        "validFrom": "2024-01-01T00:00:00Z",
        "validUntil": "2099-01-01T00:00:00Z",
        "credentialSchema": {
            "id": f"{BASE_URL}/schemas/ResidenceCredential",
            "type": "JsonSchema",
            "digestSRI": SRI,
        },
        "credentialStatus": status,
        "credentialSubject": {
            "id": holder_did,
            "givenName": "Mei",
            "familyName": "Chen",
            "birthDate": "1990-04-02",
            "zkCommitments": {"age": "00", "residency": "00"},
        },
        "iss": holder_did,
        "iat": 1_700_000_000,
    }


# Every place a value is read: top-level members, members of nested objects, list items.
PATHS = (
    "@context",
    "@context.0",
    "id",
    "type",
    "type.0",
    "type.1",
    "issuer",
    "name",
    "description",
    "validFrom",
    "validUntil",
    "credentialSchema",
    "credentialSchema.digestSRI",
    "credentialSchema.id",
    "credentialStatus",
    "credentialStatus.0",
    "credentialStatus.0.statusListIndex",
    "credentialStatus.0.statusListCredential",
    "credentialStatus.0.statusPurpose",
    "credentialStatus.0.type",
    "credentialSubject",
    "credentialSubject.id",
    "credentialSubject.givenName",
    "credentialSubject.zkCommitments",
    "credentialSubject.zkCommitments.age",
    "evidence",
    "termsOfUse",
    "iss",
    "iat",
    "nbf",
    "exp",
    "cnf",
    "cnf.jwk",
    "_sd",
    "_sd_alg",
    "sub",
    "aud",
    "jti",
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()  # NaN and Infinity too: json.dumps writes them, a careless parser takes them
    | st.text(max_size=24)
    | st.sampled_from(["did:smartcity:city-agency", "2024-01-01T00:00:00Z", "1e400", ""])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


deep = st.integers(min_value=20, max_value=400).map(_nested)  # json.dumps itself stops near 1000


values = (
    json_values
    | deep
    | st.sampled_from(
        [[{"id": 5}], [{"id": {"x": 1}}], [], [{}], [{"id": "did:x:1"}, {"id": "did:x:2"}]]
    )
)


def put(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `document` with `value` at a dotted path (list indexes as numbers)."""
    out = copy.deepcopy(document)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        key: Any = int(part) if isinstance(node, list) else part
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    last: Any = int(parts[-1]) if isinstance(node, list) else parts[-1]
    if isinstance(node, list) and last >= len(node):
        node.append(value)
    else:
        node[last] = value
    return out


def kid(holder: Any) -> str:
    return f"{holder.did}#key-1"


def vc_jwt(holder: Any, payload: dict[str, Any]) -> str:
    return sign_compact(payload, holder.key, {"typ": "vc+jwt", "cty": "vc", "kid": kid(holder)})


def vc_sd_jwt(holder: Any, payload: dict[str, Any]) -> str:
    """An SD-JWT whose subject claims are disclosures, so fuzzed values sit inside them too."""
    subject = payload.get("credentialSubject")
    names = [k for k in subject if k != "id"] if isinstance(subject, dict) else []
    try:
        body, disclosures = make_disclosable(payload, [f"credentialSubject.{n}" for n in names])
    except Exception:  # a fuzzed payload may not be disclosable: sign it as it is
        body, disclosures = dict(payload), []
    body.setdefault("_sd_alg", "sha-256")
    header = {"typ": "vc+sd-jwt", "cty": "vc", "kid": kid(holder)}
    issuer_jwt = sign_compact(body, holder.key, header)
    return "~".join([issuer_jwt, *(d.encoded for d in disclosures)]) + "~"


def vc_cose(holder: Any, payload: dict[str, Any]) -> str:
    """The same payload secured as COSE_Sign1 by the holder's key (the third format)."""
    from services.identity import vc_cose as cose

    return cose._sign(payload, holder.key, kid(holder), cose.CREDENTIAL)


SIGNERS = {"vc+jwt": vc_jwt, "vc+sd-jwt": vc_sd_jwt, "vc+cose": vc_cose}
FORMATS = sorted(SIGNERS)


def assert_refused_or_unverified(answer: Any) -> None:
    """What a user sees: a 4xx naming the problem, or a 200 whose report does not verify."""
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.json()["error"]["message"], answer.text
    else:
        assert answer.json()["verified"] is False, answer.text


def challenge(idn: Any) -> dict[str, Any]:
    made = idn.call("bank-a", "POST", "/challenges", json={"audience": "https://bank-a.example"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def media_type(token: str) -> str:
    return "application/vc+jwt" if "." in token else "application/vc+cose"


def present(idn: Any, holder: Any, token: str) -> Any:
    ch = challenge(idn)
    if "~" in token:
        shown = token + sign_compact(
            {
                "iat": int(time.time()),
                "nonce": ch["nonce"],
                "aud": ch["audience"],
                "sd_hash": sd_jwt._sd_hash(token),
            },
            holder.key,
            {"typ": "kb+jwt"},
        )
    else:
        entry = envelope(token, media_type(token))
        vp = {
            "@context": [VC_CONTEXT_V2],
            "type": ["VerifiablePresentation"],
            "holder": holder.did,
            "verifiableCredential": [entry],
        }
        shown = vc_jose.issue_presentation(
            vp, holder.key, kid=kid(holder), nonce=ch["nonce"], audience=ch["audience"]
        )
    return idn.call(
        "bank-a",
        "POST",
        "/presentations/verify",
        json={"presentation": shown, "nonce": ch["nonce"]},
    )


HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@HYPOTHESIS
@given(path=st.sampled_from(PATHS), value=values, fmt=st.sampled_from(FORMATS))
def test_any_json_in_any_field_of_a_signed_credential_is_refused_not_crashed(
    identity, holder, path, value, fmt
):
    payload = put(credential_for(holder.did), path, value)
    token = SIGNERS[fmt](holder, payload)
    answer = identity.call("bank-a", "POST", "/credentials/verify", json={"credential": token})
    assert_refused_or_unverified(answer)


@HYPOTHESIS
@given(path=st.sampled_from(PATHS), value=values, fmt=st.sampled_from(FORMATS))
def test_any_json_in_any_field_of_a_presented_credential_is_refused_not_crashed(
    identity, holder, path, value, fmt
):
    payload = put(credential_for(holder.did), path, value)
    token = SIGNERS[fmt](holder, payload)
    assert_refused_or_unverified(present(identity, holder, token))


def test_a_list_of_subjects_is_read_not_refused(identity, holder):
    """VCDM 2.0 allows several subjects: each is read and reported, the holder is one of them."""
    payload = credential_for(holder.did)
    payload["credentialSubject"] = [
        {"id": holder.did, "givenName": "Mei"},
        {"id": "did:smartcity:0123456789abcdef0123456789abcdef", "givenName": "Lin"},
    ]
    for token in (vc_jwt(holder, payload), vc_sd_jwt(holder, payload)):
        answer = identity.call("bank-a", "POST", "/credentials/verify", json={"credential": token})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        assert report["checks"]["signature"]["status"] == "passed", report
        assert report["subject"] == holder.did
        assert report["verified"] is False  # self-signed: not anchored, not an issuer
        assert "not anchored" in report["checks"]["anchor"]["message"]


def test_malformed_fields_name_the_field_in_the_report(identity, holder):
    cases = [
        ("type", ["VerifiableCredential", 5], "type must be"),
        ("credentialSubject.id", 42, "credentialSubject.id must be a URL"),
        ("credentialSubject.id", {"id": "x"}, "credentialSubject.id must be a URL"),
        ("credentialStatus", [7], "credentialStatus must be"),
        ("validFrom", "yesterday", "validFrom is not a date-time"),
        ("exp", "soon", "exp must be a NumericDate"),
        ("iat", float("nan"), "not a JSON number"),
        ("nbf", True, "nbf must be a NumericDate"),
        ("cnf", {"jwk": {"kty": "EC", "crv": "P-256", "x": 5}}, "cnf.jwk.x must be a string"),
    ]
    for path, value, named in cases:
        payload = put(credential_for(holder.did), path, value)
        for token in (vc_jwt(holder, payload), vc_sd_jwt(holder, payload)):
            answer = identity.call(
                "bank-a", "POST", "/credentials/verify", json={"credential": token}
            )
            assert_refused_or_unverified(answer)
            text = answer.text
            assert named in text, (path, value, text)


def test_the_credential_jwts_exp_and_nbf_limit_its_validity(identity, holder):
    """RFC 7519 on the issuer-signed JWT: exp (exclusive) and nbf, next to validFrom/validUntil."""
    now = int(time.time())
    cases = [({"exp": now - 5}, "exp"), ({"exp": now}, "exp"), ({"nbf": now + 3600}, "nbf")]
    for times, named in cases:
        payload = {**credential_for(holder.did), **times}
        for token in (vc_jwt(holder, payload), vc_sd_jwt(holder, payload)):
            answer = identity.call(
                "bank-a", "POST", "/credentials/verify", json={"credential": token}
            )
            assert answer.status_code == 200, answer.text
            check = answer.json()["checks"]["validity_period"]
            assert check["status"] == "failed" and named in check["message"], (times, check)
    payload = {**credential_for(holder.did), "exp": now + 3600, "nbf": now - 5}
    answer = identity.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": vc_jwt(holder, payload)}
    )
    assert answer.json()["checks"]["validity_period"]["status"] == "passed", answer.json()
