"""GET /identity/credentials: an agency's issued, suspended and revoked credentials (metadata)."""

from __future__ import annotations

from typing import Any

import pytest

CLAIMS = {"givenName": "Mei", "familyName": "Chen", "birthDate": "1990-04-02"}


def issue(idn: Any, org: str, subject: str, count: int = 1) -> list[dict[str, Any]]:
    item = {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS}
    if count == 1:
        made = idn.call(org, "POST", "/credentials", json=item)
        assert made.status_code == 201, made.text
        return [made.json()]
    made = idn.call(org, "POST", "/credentials/batch", json={"items": [item] * count})
    assert made.status_code == 201, made.text
    return list(made.json()["credentials"])


def listing(idn: Any, org: str, **params: Any) -> Any:
    return idn.call(org, "GET", "/credentials", params=params)


def ids(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["credentials"]]


def make_second_agency(idn: Any) -> None:
    """Governance gives road-authority the agency role and admits it as a residence issuer."""
    proposal = idn.chain_call(
        "city-agency",
        "governance",
        "propose",
        {
            "action": "set_roles",
            "params": {"id": "road-authority", "roles": ["road_authority", "committee", "agency"]},
        },
    )
    assert proposal["status"] == "ok", proposal
    vote = idn.chain_call(
        "regulator", "governance", "vote", {"proposal": proposal["tx"], "approve": True}
    )
    assert vote["status"] == "ok", vote
    keys = idn.call("road-authority", "POST", "/issuers/me/keys", json={})
    assert keys.status_code == 201, keys.text
    idn.govern("admit_issuer", {"org": "road-authority", "types": ["ResidenceCredential"]})


def test_an_agency_lists_its_credentials_newest_first_with_their_status(issuer, holder):
    batch = issue(issuer, "city-agency", holder.did, count=2)
    latest = issue(issuer, "city-agency", holder.did)[0]
    revoked, suspended = batch[0]["id"], batch[1]["id"]
    gone = issuer.call("city-agency", "POST", f"/credentials/{revoked}/revoke", json={})
    assert gone.status_code == 200, gone.text
    paused = issuer.call("city-agency", "POST", f"/credentials/{suspended}/suspend")
    assert paused.status_code == 200, paused.text

    answer = listing(issuer, "city-agency")
    assert ids(answer)[0] == latest["id"] and set(ids(answer)) == {latest["id"], *ids_of(batch)}
    by_id = {c["id"]: c for c in answer.json()["credentials"]}
    assert answer.json()["next_cursor"] is None
    assert by_id[latest["id"]]["status"] == "issued"
    assert by_id[latest["id"]]["status_height"] is None
    assert by_id[revoked]["status"] == "revoked"
    assert by_id[revoked]["status_height"] == gone.json()["height"]
    assert by_id[suspended]["status"] == "suspended"
    assert by_id[suspended]["status_height"] == paused.json()["height"]
    first = by_id[latest["id"]]
    assert first["issuer"] == "did:smartcity:city-agency" and first["subject"] == holder.did
    assert first["hash"] == latest["hash"] and first["anchor"] == latest["anchor"]
    assert first["type"] == "ResidenceCredential" and first["format"] == "vc+sd-jwt"
    # Metadata only: the claims (a name, a birth date) never leave the agency's vault here
    # (each value whole: a hex hash in the answer may hold "1990" by chance, not "1990-04-02")
    assert "claims" not in first
    assert all(value not in answer.text for value in CLAIMS.values())

    assert ids(listing(issuer, "city-agency", status="revoked")) == [revoked]
    assert ids(listing(issuer, "city-agency", status="suspended")) == [suspended]
    assert ids(listing(issuer, "city-agency", status="issued")) == [latest["id"]]
    assert len(ids(listing(issuer, "city-agency", type="ResidenceCredential"))) == 3


def ids_of(credentials: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in credentials]


def test_pages_follow_the_cursor_in_the_same_stable_order(issuer, holder):
    issue(issuer, "city-agency", holder.did, count=3)
    issue(issuer, "city-agency", holder.did)
    whole = ids(listing(issuer, "city-agency"))
    walked, cursor = [], None
    for _ in range(10):
        params = {"limit": 1} if cursor is None else {"limit": 1, "cursor": cursor}
        page = listing(issuer, "city-agency", **params)
        walked += ids(page)
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert walked == whole and len(whole) == 4
    # A credential issued meanwhile does not shift the pages already handed out
    two = listing(issuer, "city-agency", limit=2)
    issue(issuer, "city-agency", holder.did)
    rest = listing(issuer, "city-agency", limit=10, cursor=two.json()["next_cursor"])
    assert ids(two) + ids(rest) == whole


def test_an_agency_sees_only_its_own_and_a_regulator_sees_all_without_subjects(issuer, holder):
    make_second_agency(issuer)
    mine = issue(issuer, "city-agency", holder.did)[0]["id"]
    theirs = issue(issuer, "road-authority", holder.did)[0]["id"]

    assert ids(listing(issuer, "city-agency")) == [mine]
    assert ids(listing(issuer, "road-authority")) == [theirs]
    peek = listing(issuer, "city-agency", issuer="road-authority")
    assert peek.status_code == 403 and peek.json()["error"]["code"] == "not_controller"
    assert theirs not in peek.text

    everything = listing(issuer, "regulator")
    assert ids(everything) == [theirs, mine]
    assert all(c["subject"] is None for c in everything.json()["credentials"])
    assert {c["issuer_org"] for c in everything.json()["credentials"]} == {
        "city-agency",
        "road-authority",
    }
    assert ids(listing(issuer, "regulator", issuer="road-authority")) == [theirs]

    bank = listing(issuer, "bank-a")
    assert bank.status_code == 403 and "lacks role agency or regulator" in bank.text


@pytest.mark.parametrize(
    ("params", "status", "code", "says"),
    [
        ({"status": "expired"}, 400, "bad_status", "issued, suspended, revoked"),
        ({"type": "NoSuchCredential"}, 404, "unknown_type", "NoSuchCredential"),
        ({"limit": 0}, 422, "invalid_request", "query.limit"),
        ({"limit": 201}, 422, "invalid_request", "query.limit"),
        ({"cursor": "not-a-cursor"}, 400, "bad_cursor", "next_cursor"),
    ],
    ids=["status", "type", "limit-low", "limit-high", "cursor"],
)
def test_bad_filters_get_a_specific_error(issuer, params, status, code, says):
    answer = listing(issuer, "city-agency", **params)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert says in answer.json()["error"]["message"]


def test_listing_needs_a_token(identity):
    answer = identity.client.get("/identity/credentials")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
