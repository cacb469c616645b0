"""Keys offered for a DID are validated fully: every bad one gets a 422 naming the problem.

POST /identity/dids and PUT /identity/dids/{did}/keys take JWKs from the caller; Hypothesis
offers arbitrary JSON, valid keys with one member broken, P-256 points off the curve, and
Ed25519 encodings that are not canonical or of small order.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwcrypto import jwk

from services.identity import b64url_decode, b64url_encode

# The eight Ed25519 points of small order (RFC 8032 curve, canonical encodings).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
members = st.sampled_from(["kty", "crv", "x", "y", "alg", "use", "d", "kid"])


def good_key(kind: str) -> dict[str, Any]:
    if kind == "ed25519":
        return dict(jwk.JWK.generate(kty="OKP", crv="Ed25519").export_public(as_dict=True))
    return dict(jwk.JWK.generate(kty="EC", crv="P-256").export_public(as_dict=True))


@st.composite
def broken_keys(draw: Any) -> dict[str, Any]:
    """A valid key with one member replaced by arbitrary JSON, removed, or added."""
    key = good_key(draw(st.sampled_from(["ed25519", "p256"])))
    member = draw(members)
    action = draw(st.sampled_from(["replace", "remove"]))
    if action == "remove" and member in key and member != "kid":
        del key[member]
    else:
        value = draw(json_values)
        if key.get(member) == value or (member == "kid" and isinstance(value, str)):
            value = 12345  # keep the key broken: no accidental repair
        if member == "use" and value == "sig":
            value = "enc"
        if member in ("x", "y") and isinstance(value, str):
            value += "!"  # never base64url: a random string could be a valid coordinate
        key[member] = value
    return key


@st.composite
def off_curve_p256(draw: Any) -> dict[str, Any]:
    key = good_key("p256")
    y = bytearray(b64url_decode(key["y"]))
    y[draw(st.integers(0, 31))] ^= 1 << draw(st.integers(0, 7))
    return {**key, "y": b64url_encode(bytes(y))}


def ed25519(raw: bytes) -> dict[str, Any]:
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}


bad_keys = (
    json_values
    | broken_keys()
    | off_curve_p256()
    | st.sampled_from([ed25519(bytes.fromhex(h)) for h in SMALL_ORDER])
    | st.integers(2**255 - 19, 2**255 - 1).map(lambda y: ed25519(y.to_bytes(32, "little")))
)


def create(idn: Any, key: Any) -> Any:
    return idn.call("city-agency", "POST", "/dids", json={"keys": [{"publicKeyJwk": key}]})


def assert_named_422(answer: Any) -> str:
    assert answer.status_code == 422, answer.text
    message = str(answer.json()["error"]["message"])
    assert message, answer.text
    return message


@HYPOTHESIS
@given(key=bad_keys)
def test_registering_any_bad_key_is_a_422_naming_the_problem(identity, key):
    assert_named_422(create(identity, key))


@HYPOTHESIS
@given(key=bad_keys)
def test_rotating_to_any_bad_key_is_a_422_naming_the_problem(identity, holder, key):
    version = int(holder.doc["didDocumentMetadata"]["versionId"])
    answer = identity.call(
        "city-agency",
        "PUT",
        f"/dids/{holder.did}/keys",
        json={"keys": [{"id": "key-2", "publicKeyJwk": key}], "version": version},
    )
    assert_named_422(answer)


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ({}, "kty is missing"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "kty 'RSA' is not supported"),
        ({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}, "crv 'P-384' is not supported"),
        ({"kty": "OKP", "crv": "P-256", "x": "AA"}, "needs kty EC"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "x must be 32 bytes"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "+/+/"}, "x is not base64url"),
        (ed25519(bytes.fromhex(SMALL_ORDER[4])), "small order"),
        (ed25519((2**255 - 18).to_bytes(32, "little")), "not a canonical"),
    ],
)
def test_bad_keys_get_the_problem_named(identity, key, named):
    assert named in assert_named_422(create(identity, key))


def test_a_p256_point_off_the_curve_is_refused(identity):
    key = good_key("p256")
    key["y"] = key["x"]
    assert "not on curve P-256" in assert_named_422(create(identity, key))


def test_a_private_key_is_refused_and_the_error_names_the_key(identity):
    secret = dict(jwk.JWK.generate(kty="OKP", crv="Ed25519").export_private(as_dict=True))
    answer = identity.call(
        "city-agency",
        "POST",
        "/dids",
        json={"keys": [{"publicKeyJwk": good_key("ed25519")}, {"publicKeyJwk": secret}]},
    )
    message = assert_named_422(answer)
    assert "keys[1].publicKeyJwk" in message and "private" in message
