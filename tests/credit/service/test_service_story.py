"""The "done means" story: a bank needs the SME's consent, gets a proven rating, the SME sees it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from chain.light import verify_bundle
from services.credit import sdk, statement_csv
from smartcity.cli import main as smartcity


def verify_offline(bundle: dict, data: Path, tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(bundle))
    result = CliRunner().invoke(
        smartcity, ["verify-proof", str(path), "--genesis", str(data / "genesis.json")]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_bank_needs_consent_then_gets_a_proven_rating_and_the_sme_sees_it(
    credit_env: Any, tmp_path: Path
) -> None:
    env = credit_env
    # The model's validation metrics are on the chain; governance approves it
    listed = env.get("/models", "bank-a")
    assert listed.status_code == 200, listed.text
    models = listed.json()
    mine = next(m for m in models["models"] if m["sha256"] == env.model_sha)
    assert mine["status"] == "pending" and mine["metrics"]["holdout"]["gbm"]["auc"] > 0.7
    approved = env.approve_model(env.model_sha)
    assert approved["model"]["status"] == "approved" and approved["model"]["active"]
    detail = env.get(f"/models/{env.model_sha}", "bank-a").json()
    proven = verify_bundle(detail["proof"], env.genesis)
    assert (
        proven.facts["value"]["metrics"]["holdout"]["gbm"]["auc"]
        == mine["metrics"]["holdout"]["gbm"]["auc"]
    )

    # The SME registers itself, uploads three years of statements, and is rated
    uscc = str(env.statements["uscc"].iloc[0])
    registered = env.post(
        "/smes", "sme-demo", json={"uscc": uscc, "name": "Demo Precision Parts Co."}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["org"] == "sme-demo"
    files = {"file": ("statements.csv", statement_csv(env.statements, uscc), "text/csv")}
    uploaded = env.post(f"/smes/{uscc}/statements", "sme-demo", files=files)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["periods"] == ["2021", "2022", "2023"]
    rated = env.post(f"/smes/{uscc}/ratings", "sme-demo")
    assert rated.status_code == 201, rated.text
    rating = rated.json()
    assert rating["grade"] in {"AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"}
    assert rating["reasons"] and rating["model"] == env.model_sha and rating["period"] == "2023"
    # Each reason reads as a sentence: the ratio's meaning, its value, the points it cost
    first = rating["reasons"][0]
    assert first["text"].startswith(first["category"].replace("_", " ").capitalize() + ": ")
    assert first["description"] in first["text"] and "Attr" not in first["text"]
    assert f"lowers the score by {abs(first['points']):.1f} points" in first["text"]

    # A bank, as a new user, cannot see it without consent
    refused = env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "loan_application"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "no_consent"
    assert "grant_consent" in refused.json()["error"]["message"]

    # The SME signs a consent for bank-a's loan application
    end_ms = int(time.time() * 1000) + 30 * 24 * 3600 * 1000
    tx = sdk.grant_consent_tx(
        env.key("sme-demo"),
        chain_id=env.genesis.chain_id,
        expiry_height=env.expiry(),
        uscc=uscc,
        bank="bank-a",
        purpose="loan_application",
        end_ms=end_ms,
    )
    granted = env.post("/consents", "sme-demo", json=env.signed(tx))
    assert granted.status_code == 201, granted.text
    assert granted.json()["live"] and granted.json()["granted_tx"] == tx.hash

    # With consent the bank gets the rating, its reasons, and proofs that verify offline
    answer = env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "loan_application"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rating"]["grade"] == rating["grade"] and body["rating"]["pd"] == rating["pd"]
    assert [r["code"] for r in body["rating"]["reasons"]] == [r["code"] for r in rating["reasons"]]
    assert all(r["value"] is None and r["description"] for r in body["rating"]["reasons"])
    said = verify_offline(body["proof"], env.data, tmp_path, "rating.json")
    assert said.startswith(f"VALID: The credit rating of SME {uscc} (grade {rating['grade']},")
    said = verify_offline(body["inquiry_proof"], env.data, tmp_path, "inquiry.json")
    assert "credit.record_inquiry, ok" in said
    assert "--genesis data/genesis.json" in body["verify"]  # where `smartcity up` puts it
    checked = sdk.verify_rating_answer(body, env.genesis)
    assert checked.rating["grade"] == rating["grade"]
    assert "features" not in body["proof"]["value"]  # the features never reach the chain

    # Consent is per bank and purpose
    other = env.get(f"/smes/{uscc}/rating", "bank-b", params={"purpose": "loan_application"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "no_consent"
    monitoring = env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "monitoring"})
    assert monitoring.status_code == 403

    # The SME sees who looked; the regulator sees every inquiry
    seen = env.get(f"/smes/{uscc}/inquiries", "sme-demo").json()
    assert seen["total_on_chain"] == 1
    (inquiry,) = seen["inquiries"]
    assert inquiry["bank"] == "bank-a" and inquiry["purpose"] == "loan_application"
    assert inquiry["rating_tx"] == rating["tx"] and inquiry["tx"] == body["inquiry"]["tx"]
    audit = env.get("/inquiries", "regulator").json()
    assert audit["total_on_chain"] >= 1 and audit["inquiries"][0]["tx"] == inquiry["tx"]
    # The bank lists its own reads (and only its own); the audit list stays the regulator's
    mine = env.get("/banks/me/inquiries", "bank-a").json()
    assert mine["total_on_chain"] == 1 and mine["inquiries"][0]["tx"] == inquiry["tx"]
    assert env.get("/banks/me/inquiries", "bank-b").json() == {
        "total_on_chain": 0,
        "inquiries": [],
    }
    assert env.get("/banks/me/inquiries", "sme-demo").status_code == 403
    assert env.get("/inquiries", "bank-a").status_code == 403

    # The SME revokes; the bank is refused again, with the reason
    revoke = sdk.revoke_consent_tx(
        env.key("sme-demo"),
        chain_id=env.genesis.chain_id,
        expiry_height=env.expiry(),
        uscc=uscc,
        bank="bank-a",
        purpose="loan_application",
    )
    revoked = env.post("/consents/revocations", "sme-demo", json=env.signed(revoke))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "loan_application"})
    assert again.status_code == 403 and again.json()["error"]["code"] == "consent_revoked"
    assert env.get(f"/smes/{uscc}/inquiries", "sme-demo").json()["total_on_chain"] == 1
