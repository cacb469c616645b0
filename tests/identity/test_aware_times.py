"""Every time the identity service answers carries its offset, and a naive time it is sent is
refused with a 422 naming the field (it used to be read in the server's own zone, or to crash
the comparison of valid_until with an aware valid_from)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def _is_aware(text: str) -> bool:
    moment = datetime.fromisoformat(text)
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


def test_issued_at_and_expires_at_carry_a_timezone(issuer: Any, holder: Any) -> None:
    body = {"type": "ResidenceCredential", "subject": holder.did, "claims": CLAIMS}
    assert issuer.call("city-agency", "POST", "/credentials", json=body).status_code == 201
    # Read back from the database (SQLite hands back naive datetimes), not from memory
    listed = issuer.call("city-agency", "GET", "/credentials").json()["credentials"]
    assert listed and all(_is_aware(c["issued_at"]) for c in listed), listed
    assert all(c["issued_at"].endswith("Z") for c in listed)
    made = issuer.call("bank-a", "POST", "/challenges", json={"audience": "https://b.example"})
    assert made.status_code == 201 and _is_aware(made.json()["expires_at"]), made.text


def test_a_naive_validity_time_is_refused_with_its_name(issuer: Any, holder: Any) -> None:
    base = {"type": "ResidenceCredential", "subject": holder.did, "claims": CLAIMS}
    for times, field in [
        ({"valid_from": "2024-01-01T00:00:00"}, "valid_from"),
        (
            {"valid_from": "2024-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00"},
            "valid_until",
        ),
    ]:
        answer = issuer.call("city-agency", "POST", "/credentials", json={**base, **times})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_request" and field in error["message"], error
        assert "timezone" in error["message"]
    aware = {"valid_from": "2024-01-01T08:00:00+08:00", "valid_until": "2030-01-01T00:00:00Z"}
    made = issuer.call("city-agency", "POST", "/credentials", json={**base, **aware})
    assert made.status_code == 201, made.text
