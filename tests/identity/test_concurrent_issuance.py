"""Concurrent batches by one organisation: every credential issued, each with its own status
list entry, none refused. Random entries chosen by each request on its own collided (two
batches of 1,000 share an entry with probability 0.9995) and the whole batch answered 409
status_entry_taken; entries now come from a per-organisation counter reserved in its own short
transaction, mapped to list indexes by a secret permutation."""

from __future__ import annotations

import threading
from typing import Any

from services.identity import contract as c
from tests.identity.test_replay import CLAIMS

BATCHES = 4
PER_BATCH = 300  # 4 x 300 random entries of 131,072 collide with probability 0.9994


def post_batches(idn: Any, subject: str, batches: int, per_batch: int) -> list[Any]:
    """POST `batches` batch requests at once (from threads, released together)."""
    item = {"type": "ResidenceCredential", "subject": subject, "claims": CLAIMS}
    start = threading.Barrier(batches)
    answers: list[Any] = [None] * batches

    def post(number: int) -> None:
        start.wait()
        body = {"items": [{**item, "format": ("vc+jwt", "vc+sd-jwt")[number % 2]}] * per_batch}
        answers[number] = idn.call("city-agency", "POST", "/credentials/batch", json=body)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def test_concurrent_batches_by_one_org_all_issued_with_distinct_entries(
    issuer: Any, holder: Any
) -> None:
    answers = post_batches(issuer, holder.did, BATCHES, PER_BATCH)

    # Verify every batch was issued whole: no 409 status_entry_taken
    for answer in answers:
        assert answer.status_code == 201, answer.text
    credentials = [cred for answer in answers for cred in answer.json()["credentials"]]
    assert len(credentials) == BATCHES * PER_BATCH
    # Verify each credential has an entry of its own, the same for both purposes
    entries = set()
    for cred in credentials:
        (revocation, suspension) = cred["status"]
        assert (revocation["list"], revocation["index"]) == (
            suspension["list"],
            suspension["index"],
        )
        entries.add((revocation["list"], revocation["index"]))
    assert len(entries) == len(credentials)
    # Verify the chain holds each entry for the credential that names it
    for cred in credentials[:: PER_BATCH // 10]:
        entry = cred["status"][0]
        key = c.entry_key("city-agency", entry["list"], entry["index"])
        assert issuer.ledger.read(c.NAMESPACE, key) == cred["hash"]
    # Verify the service lists them all
    listed = issuer.call("city-agency", "GET", "/credentials", params={"limit": 1})
    assert listed.status_code == 200, listed.text
    # Verify one credential of each batch verifies, and a revoked one reads as revoked
    for answer in answers:
        token = answer.json()["credentials"][-1]["credential"]
        checked = issuer.call("bank-a", "POST", "/credentials/verify", json={"credential": token})
        assert checked.status_code == 200 and checked.json()["verified"] is True, checked.text
    revoked = credentials[0]
    made = issuer.call("city-agency", "POST", f"/credentials/{revoked['id']}/revoke", json={})
    assert made.status_code == 200, made.text
    checked = issuer.call(
        "bank-a", "POST", "/credentials/verify", json={"credential": revoked["credential"]}
    )
    assert checked.json()["verified"] is False
    assert "revoked" in checked.json()["checks"]["status"]["message"]
