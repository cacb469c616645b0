"""Every bad input gets a specific 4xx naming what is wrong, and leaves nothing half-written."""

from __future__ import annotations

import io
import time
from typing import Any

import pandas as pd
import pytest

from chain.crypto import SigningKey
from services.credit import sdk, statement_csv
from services.credit.uscc import make_uscc

DAY_MS = 24 * 3600 * 1000


def uscc_of(env: Any, i: int) -> str:
    return str(env.statements["uscc"].unique()[i])


def csv_upload(text: str) -> dict[str, Any]:
    return {"file": ("s.csv", text.encode(), "text/csv")}


def register(env: Any, i: int, org: str = "sme-demo") -> str:
    uscc = uscc_of(env, i)
    response = env.post("/smes", "city-agency", json={"uscc": uscc, "org": org})
    assert response.status_code == 201, response.text
    return uscc


def test_rating_before_governance_approves_a_model_is_refused(credit_env: Any) -> None:
    uscc = register(credit_env, 1)
    upload = credit_env.post(
        f"/smes/{uscc}/statements",
        "sme-demo",
        files={"file": ("s.csv", statement_csv(credit_env.statements, uscc), "text/csv")},
    )
    assert upload.status_code == 201
    refused = credit_env.post(f"/smes/{uscc}/ratings", "sme-demo")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "no_approved_model"
    assert "approve_model" in refused.json()["error"]["message"]
    credit_env.approve_model(credit_env.model_sha)
    assert credit_env.post(f"/smes/{uscc}/ratings", "sme-demo").status_code == 201


@pytest.mark.parametrize(
    ("code", "position", "why"),
    [
        ("91110108000000019", 18, "missing"),
        ("91110108000000019Z", 18, "letters I, O, Z, S and V are not used"),
        ("9111010800000001I4", 17, "not in the USCC character set"),
        ("91110108000000019A", 18, "check character is 'A', expected '4'"),
        ("O11101080000000194", 1, "not in the USCC character set"),
    ],
)
def test_a_wrong_uscc_names_the_character(
    credit_env: Any, code: str, position: int, why: str
) -> None:
    response = credit_env.post("/smes", "sme-demo", json={"uscc": code})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_uscc"
    assert error["details"]["position"] == position
    assert f"character {position}" in error["message"] and why in error["message"]


def test_registration_refusals(credit_env: Any) -> None:
    uscc = uscc_of(credit_env, 2)
    # An SME cannot register for another organisation; an agency must name one that is an SME
    other = credit_env.post("/smes", "sme-demo", json={"uscc": uscc, "org": "bank-a"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_your_sme"
    not_sme = credit_env.post("/smes", "city-agency", json={"uscc": uscc, "org": "bank-a"})
    assert not_sme.status_code == 422 and not_sme.json()["error"]["code"] == "not_sme"
    no_org = credit_env.post("/smes", "city-agency", json={"uscc": uscc})
    assert no_org.status_code == 422 and no_org.json()["error"]["code"] == "no_org"
    unknown = credit_env.post("/smes", "city-agency", json={"uscc": uscc, "org": "nobody-here"})
    assert (
        unknown.status_code == 422
        and "no active organisation" in unknown.json()["error"]["message"]
    )
    bad_did = credit_env.post("/smes", "sme-demo", json={"uscc": uscc, "did": "not a did"})
    assert bad_did.status_code == 422 and bad_did.json()["error"]["code"] == "bad_did"
    extra = credit_env.post("/smes", "sme-demo", json={"uscc": uscc, "colour": "red"})
    assert extra.status_code == 422 and extra.json()["error"]["code"] == "invalid_request"
    assert credit_env.get(f"/smes/{uscc}", "bank-a").status_code == 404
    # Registering again for the same organisation completes; for another one conflicts
    first = credit_env.post(
        "/smes", "sme-demo", json={"uscc": uscc, "did": "did:web:parts.example"}
    )
    assert first.status_code == 201 and first.json()["did"] == "did:web:parts.example"
    again = credit_env.post("/smes", "city-agency", json={"uscc": uscc, "org": "sme-demo"})
    assert again.status_code == 201 and again.json()["tx"] == first.json()["tx"]
    credit_env.add_sme_org("sme-rival")
    taken = credit_env.post("/smes", "city-agency", json={"uscc": uscc, "org": "sme-rival"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "sme_exists"
    dup = credit_env.post(
        "/smes/batch",
        "city-agency",
        json={"smes": [{"uscc": uscc, "org": "sme-demo"}, {"uscc": uscc, "org": "sme-demo"}]},
    )
    assert dup.status_code == 422 and dup.json()["error"]["code"] == "duplicate_uscc"


def test_rejected_statement_files_report_rows_and_store_nothing(credit_env: Any) -> None:
    uscc = register(credit_env, 3)
    good = statement_csv(credit_env.statements, uscc).decode()
    header, *lines = good.strip().splitlines()
    cases = {
        "missing column": (
            header.replace("net_profit", "netprofit") + "\n" + "\n".join(lines),
            "net_profit",
        ),
        "not a number": (
            header
            + "\n"
            + lines[0]
            + "\n"
            + lines[1].replace(",CNY,", ",CNY,").replace(lines[1].split(",")[3], "lots")
            + "\n"
            + lines[2],
            "row 3",
        ),
        "duplicate period": (
            header + "\n" + lines[0] + "\n" + lines[0] + "\n",
            "duplicate of row 2",
        ),
        "gap": (header + "\n" + lines[0] + "\n" + lines[2] + "\n", "gap"),
        "bad unit": (header + "\n" + lines[0].replace("thousands", "bushels") + "\n", "bushels"),
        "header only": (header + "\n", "no data rows"),
    }
    for name, (text, expected) in cases.items():
        response = credit_env.post(f"/smes/{uscc}/statements", "sme-demo", files=csv_upload(text))
        assert response.status_code == 422, name
        error = response.json()["error"]
        assert error["code"] == "invalid_statements", name
        assert expected in error["message"] or any(expected in str(d) for d in error["details"]), (
            name,
            error,
        )
        assert "nothing was stored" in error["message"]
    assert credit_env.get(f"/smes/{uscc}/statements", "sme-demo").json()["periods"] == []
    # Not a file upload at all
    raw = credit_env.client.post(
        f"/credit/smes/{uscc}/statements",
        content=b"{}",
        headers={**credit_env.auth("sme-demo"), "content-type": "application/json"},
    )
    assert raw.status_code == 422 and raw.json()["error"]["code"] == "unsupported_media_type"
    wrong_part = credit_env.post(
        f"/smes/{uscc}/statements",
        "sme-demo",
        files={"attachment": ("s.csv", good.encode(), "text/csv")},
    )
    assert wrong_part.status_code == 422 and wrong_part.json()["error"]["code"] == "missing_file"
    empty = credit_env.post(f"/smes/{uscc}/statements", "sme-demo", files=csv_upload(""))
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_file"
    huge = credit_env.client.post(
        f"/credit/smes/{uscc}/statements",
        content=b"x" * (5 * 1024 * 1024 + 1),
        headers={**credit_env.auth("sme-demo"), "content-type": "text/csv"},
    )
    assert huge.status_code == 413
    # A later upload may not leave a gap after the stored periods
    first = credit_env.post(
        f"/smes/{uscc}/statements", "sme-demo", files=csv_upload(header + "\n" + lines[0] + "\n")
    )
    assert first.status_code == 201
    gap = credit_env.post(
        f"/smes/{uscc}/statements", "sme-demo", files=csv_upload(header + "\n" + lines[2] + "\n")
    )
    assert gap.status_code == 422 and "gap between 2021 and 2023" in gap.json()["error"]["message"]
    assert [
        p["period"]
        for p in credit_env.get(f"/smes/{uscc}/statements", "sme-demo").json()["periods"]
    ] == ["2021"]


def test_excel_upload_and_replacing_a_period(credit_env: Any) -> None:
    uscc = register(credit_env, 4)
    frame = pd.read_csv(io.BytesIO(statement_csv(credit_env.statements, uscc)), dtype=str)
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)
    files = {
        "file": (
            "statements.xlsx",
            buffer.getvalue(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    }
    response = credit_env.post(f"/smes/{uscc}/statements", "sme-demo", files=files)
    assert response.status_code == 201, response.text
    assert (
        response.json()["periods"] == ["2021", "2022", "2023"] and response.json()["replaced"] == []
    )
    again = credit_env.post(f"/smes/{uscc}/statements", "city-agency", files=files)
    assert again.status_code == 201 and again.json()["replaced"] == ["2021", "2022", "2023"]
    stored = credit_env.get(f"/smes/{uscc}/statements", "sme-demo").json()["periods"]
    assert stored[-1]["features"]["Attr1"] is not None and stored[-1]["features_hash"]


def test_rating_refusals_and_batch_failures(credit_env: Any) -> None:
    bare = register(credit_env, 5)
    rated = register(credit_env, 6)
    upload = credit_env.post(
        f"/smes/{rated}/statements",
        "sme-demo",
        files={"file": ("s.csv", statement_csv(credit_env.statements, rated), "text/csv")},
    )
    assert upload.status_code == 201
    credit_env.approve_model(credit_env.model_sha) if credit_env.get("/models", "bank-a").json()[
        "active"
    ] is None else None
    no_statements = credit_env.post(f"/smes/{bare}/ratings", "sme-demo")
    assert (
        no_statements.status_code == 422
        and no_statements.json()["error"]["code"] == "no_statements"
    )
    unknown = make_uscc("99999999")
    assert credit_env.post(f"/smes/{unknown}/ratings", "city-agency").status_code == 404
    batch = credit_env.post(
        "/ratings/batch", "city-agency", json={"usccs": [rated, bare, unknown, "NOT-A-CODE"]}
    )
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["rated"] == 1 and len(body["txs"]) == 1
    assert {(f["uscc"], f["code"]) for f in body["failed"]} == {
        (bare, "no_statements"),
        (unknown, "unknown_sme"),
        ("NOT-A-CODE", "invalid_uscc"),
    }
    own = credit_env.get(f"/smes/{rated}/rating", "sme-demo")
    assert own.status_code == 200 and own.json()["seq"] == 1
    assert any(r["value"] is not None for r in own.json()["reasons"])  # the SME sees its own values
    assert credit_env.get(f"/smes/{bare}/rating", "sme-demo").status_code == 404
    empty = credit_env.post("/ratings/batch", "city-agency", json={"usccs": []})
    assert empty.status_code == 422


def test_consent_and_read_refusals(credit_env: Any) -> None:
    uscc = register(credit_env, 7)
    chain_id, end_ms = credit_env.genesis.chain_id, int(time.time() * 1000) + DAY_MS
    sme_key = credit_env.key("sme-demo")

    def grant(key: SigningKey, **changes: Any) -> Any:
        fields = {
            "uscc": uscc,
            "bank": "bank-a",
            "purpose": "monitoring",
            "end_ms": end_ms,
            **changes,
        }
        tx = sdk.grant_consent_tx(
            key, chain_id=chain_id, expiry_height=credit_env.expiry(), **fields
        )
        return credit_env.post("/consents", "sme-demo", json=credit_env.signed(tx))

    signed_by_bank = grant(credit_env.key("bank-a"))
    assert (
        signed_by_bank.status_code == 403
        and signed_by_bank.json()["error"]["code"] == "not_your_signature"
    )
    not_a_bank = grant(sme_key, bank="regulator")
    assert not_a_bank.status_code == 422 and not_a_bank.json()["error"]["code"] == "unknown_bank"
    past = grant(sme_key, end_ms=int(time.time() * 1000) - DAY_MS, start_ms=0)
    assert past.status_code == 422 and past.json()["error"]["code"] == "bad_period"
    too_long = grant(sme_key, end_ms=end_ms + 4 * 366 * DAY_MS)
    assert too_long.status_code == 422 and "3 years" in too_long.json()["error"]["message"]
    wrong_method = sdk.revoke_consent_tx(
        sme_key,
        chain_id=chain_id,
        expiry_height=credit_env.expiry(),
        uscc=uscc,
        bank="bank-a",
        purpose="monitoring",
    )
    mismatch = credit_env.post("/consents", "sme-demo", json=credit_env.signed(wrong_method))
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "wrong_transaction"
    nothing = credit_env.post(
        "/consents/revocations", "sme-demo", json=credit_env.signed(wrong_method)
    )
    assert nothing.status_code == 403 and nothing.json()["error"]["code"] == "no_consent"
    tampered = {
        **wrong_method.to_json(),
        "args": {"uscc": uscc, "bank": "bank-b", "purpose": "monitoring"},
    }
    forged = credit_env.post("/consents/revocations", "sme-demo", json={"tx": tampered})
    assert forged.status_code == 422 and forged.json()["error"]["code"] == "bad_signature"
    malformed = credit_env.post("/consents", "sme-demo", json={"tx": {"contract": "credit"}})
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "tx_malformed"
    # Another SME organisation cannot consent for this SME
    rival = credit_env.add_sme_org("sme-other")
    rival_tx = sdk.grant_consent_tx(
        rival,
        chain_id=chain_id,
        expiry_height=credit_env.expiry(),
        uscc=uscc,
        bank="bank-a",
        purpose="monitoring",
        end_ms=end_ms,
    )
    from chain.auth import mint_token

    headers = {"Authorization": f"Bearer {mint_token(rival, org='sme-other', audience='credit')}"}
    stolen = credit_env.client.post(
        "/credit/consents", headers=headers, json=credit_env.signed(rival_tx)
    )
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "not_your_sme"
    # Bank reads: missing or unknown purpose, unknown SME, consent not yet started, not rated
    assert (
        credit_env.get(f"/smes/{uscc}/rating", "bank-a").json()["error"]["code"]
        == "missing_purpose"
    )
    assert (
        credit_env.get(
            f"/smes/{uscc}/rating", "bank-a", params={"purpose": "curiosity"}
        ).status_code
        == 422
    )
    assert (
        credit_env.get(
            f"/smes/{make_uscc('99999998')}/rating", "bank-a", params={"purpose": "monitoring"}
        ).status_code
        == 404
    )
    later = grant(sme_key, start_ms=end_ms - 1000)
    assert later.status_code == 201 and later.json()["live"] is False
    early = credit_env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "monitoring"})
    assert early.status_code == 403 and early.json()["error"]["code"] == "consent_not_started"
    assert grant(sme_key).status_code == 201
    unrated = credit_env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "monitoring"})
    assert unrated.status_code == 404 and unrated.json()["error"]["code"] == "not_rated"
    consents = credit_env.get("/consents", "bank-a").json()["consents"]
    assert any(c["uscc"] == uscc and c["live"] for c in consents)
    assert credit_env.get(f"/smes/{uscc}/inquiries", "sme-demo").json()["total_on_chain"] == 0


def test_governance_submissions_must_be_about_the_model(credit_env: Any) -> None:
    chain_id = credit_env.genesis.chain_id
    other = "ab" * 32
    tx = sdk.model_proposal_tx(
        credit_env.key("city-agency"),
        chain_id=chain_id,
        expiry_height=credit_env.expiry(),
        sha256=other,
    )
    wrong = credit_env.post(
        f"/models/{credit_env.model_sha}/governance", "city-agency", json=credit_env.signed(tx)
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_proposal"
    # A proposal about an unregistered model is accepted, but the deciding vote fails by name
    proposed = credit_env.post(
        f"/models/{other}/governance", "city-agency", json=credit_env.signed(tx)
    )
    assert proposed.status_code == 200 and proposed.json()["model"]["status"] == "unregistered"
    vote = sdk.vote_tx(
        credit_env.key("regulator"),
        chain_id=chain_id,
        expiry_height=credit_env.expiry(),
        proposal=tx.hash,
    )
    decided = credit_env.post(
        f"/models/{other}/governance", "regulator", json=credit_env.signed(vote)
    )
    assert decided.status_code == 404 and decided.json()["error"]["code"] == "unknown_model"
    assert credit_env.get(f"/models/{other}", "bank-a").status_code == 404
