"""RFC 7519 exp/nbf on key binding JWTs (RFC 9901 §7.3): in the library and through HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.identity import sd_jwt, sign_compact
from services.identity.errors import KeyBindingError

NOW = 1_800_000_000
LEEWAY_S = 60


def kb_presentation(vm: Any, credential: dict[str, Any], holder: Any, **times: Any) -> str:
    """A holder-bound SD-JWT presented with a KB-JWT carrying the given time claims."""
    issuer = vm("p256")
    token = sd_jwt.issue_sd_credential(
        credential,
        issuer["secretKeyJwk"],
        disclose=["credentialSubject.residence"],
        kid=issuer["id"],
        holder_key=holder["publicKeyJwk"],
        issued_at=NOW,
    )
    shown = sd_jwt.present(token, disclose=["credentialSubject.residence"])
    claims = {
        "iat": NOW,
        "nonce": "n-1",
        "aud": "https://bank.example",
        "sd_hash": sd_jwt._sd_hash(shown),
        **times,
    }
    return shown + sign_compact(claims, holder["secretKeyJwk"], {"typ": "kb+jwt"})


def verify(vm: Any, presentation: str) -> Any:
    return sd_jwt.verify_sd_credential(
        presentation,
        vm("p256")["publicKeyJwk"],
        require_key_binding=True,
        nonce="n-1",
        audience="https://bank.example",
        now=NOW,
        leeway_s=LEEWAY_S,
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delta=st.integers(min_value=-10_000, max_value=10_000))
def test_kb_jwt_exp_is_exclusive_with_leeway(vm, credential, delta):
    presentation = kb_presentation(vm, credential, vm("ed25519"), exp=NOW + delta)
    if delta <= -LEEWAY_S:
        with pytest.raises(KeyBindingError, match="exp"):
            verify(vm, presentation)
    else:
        assert verify(vm, presentation).key_bound


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delta=st.integers(min_value=-10_000, max_value=10_000))
def test_kb_jwt_nbf_is_honoured_with_leeway(vm, credential, delta):
    presentation = kb_presentation(vm, credential, vm("ed25519"), nbf=NOW + delta)
    if delta > LEEWAY_S:
        with pytest.raises(KeyBindingError, match="nbf"):
            verify(vm, presentation)
    else:
        assert verify(vm, presentation).key_bound


@pytest.mark.parametrize("value", ["tomorrow", True, None, [NOW], 2**70])
def test_kb_jwt_time_claims_that_are_not_numeric_dates_are_refused(vm, credential, value):
    presentation = kb_presentation(vm, credential, vm("ed25519"), exp=value)
    with pytest.raises(KeyBindingError, match="exp must be a NumericDate"):
        verify(vm, presentation)


CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def test_an_expired_or_premature_kb_jwt_fails_the_presentation_over_http(issuer, holder):
    idn = issuer
    made = idn.call(
        "city-agency",
        "POST",
        "/credentials",
        json={"type": "ResidenceCredential", "subject": holder.did, "claims": CLAIMS},
    )
    token = made.json()["credential"]
    now = int(time.time())
    for times, named in [({"exp": now - 120}, "exp"), ({"nbf": now + 600}, "nbf"), ({}, "")]:
        ch = idn.call("bank-a", "POST", "/challenges", json={}).json()
        shown = sd_jwt.present(token, disclose=["credentialSubject.givenName"])
        kb = {
            "iat": now,
            "nonce": ch["nonce"],
            "aud": ch["audience"],
            "sd_hash": sd_jwt._sd_hash(shown),
            **times,
        }
        presentation = shown + sign_compact(kb, holder.key, {"typ": "kb+jwt"})
        answer = idn.call(
            "bank-a",
            "POST",
            "/presentations/verify",
            json={"presentation": presentation, "nonce": ch["nonce"]},
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        if not times:
            assert result["verified"] is True, result
            continue
        check = result["checks"]["holder_signature"]
        assert result["verified"] is False and check["status"] == "failed", result
        assert "key binding JWT is not valid now" in check["message"] and named in check["message"]
