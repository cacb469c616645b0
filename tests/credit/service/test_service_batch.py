"""Anchored rating batches: one Merkle root on the chain, and every bank read still proven."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.encoding import canonical
from chain.errors import ProofError
from services.credit import contract_terms, sdk, statement_csv
from smartcity.cli import main as smartcity

DAY_MS = 24 * 3600 * 1000


def verify_proof(env: Any, bundle: dict[str, Any], tmp_path: Path, *extra: str) -> Any:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    genesis = str(env.data / "genesis.json")
    return CliRunner().invoke(smartcity, ["verify-proof", str(path), "--genesis", genesis, *extra])


def setup_smes(env: Any, indices: range) -> list[str]:
    codes = [str(env.statements["uscc"].unique()[i]) for i in indices]
    smes = [{"uscc": c, "org": "sme-demo"} for c in codes]
    assert env.post("/smes/batch", "city-agency", json={"smes": smes}).status_code == 201
    for code in codes:
        files = {"file": ("s.csv", statement_csv(env.statements, code), "text/csv")}
        assert env.post(f"/smes/{code}/statements", "sme-demo", files=files).status_code == 201
    if env.get("/models", "bank-a").json()["active"] is None:
        env.approve_model(env.model_sha)
    return codes


def consent(env: Any, uscc: str) -> None:
    tx = sdk.grant_consent_tx(
        env.key("sme-demo"),
        chain_id=env.genesis.chain_id,
        expiry_height=env.expiry(),
        uscc=uscc,
        bank="bank-a",
        purpose="loan_application",
        end_ms=int(time.time() * 1000) + 30 * DAY_MS,
    )
    assert env.post("/consents", "sme-demo", json=env.signed(tx)).status_code == 201


def bank_read(env: Any, uscc: str) -> dict[str, Any]:
    answer = env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "loan_application"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def batch(credit_env: Any) -> dict[str, Any]:
    codes = setup_smes(credit_env, range(10, 14))
    rated = credit_env.post("/ratings/batch", "city-agency", json={"usccs": codes, "anchor": True})
    assert rated.status_code == 200, rated.text
    return {"codes": codes, **rated.json()}


def test_a_batch_is_one_anchor_and_one_batch_record(credit_env: Any, batch: dict) -> None:
    assert batch["rated"] == 4 and not batch["failed"] and len(batch["txs"]) == 2
    anchor = credit_env.ledger.read("anchors", f"batch:{batch['txs'][0]}")
    assert anchor["root"] == batch["root"] and anchor["count"] == 4
    record = credit_env.ledger.read("credit", f"rating_batch:{batch['root']}")
    assert record["model"] == credit_env.model_sha and record["tx"] == batch["txs"][1]
    # No per-SME chain entry until a bank reads it; the SME already sees its rating
    first = batch["codes"][0]
    assert credit_env.ledger.read("credit", f"rating:{first}") is None
    own = credit_env.get(f"/smes/{first}/rating", "sme-demo")
    assert own.status_code == 200, own.text
    assert own.json()["seq"] is None and own.json()["batch"] == batch["root"]
    assert any(r["value"] is not None for r in own.json()["reasons"])


def test_a_bank_reading_a_batch_rating_gets_proofs_that_verify_offline(
    credit_env: Any, batch: dict, tmp_path: Path
) -> None:
    uscc = batch["codes"][1]
    refused = credit_env.get(f"/smes/{uscc}/rating", "bank-a", params={"purpose": "monitoring"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "no_consent"
    consent(credit_env, uscc)
    own = credit_env.get(f"/smes/{uscc}/rating", "sme-demo").json()
    body = bank_read(credit_env, uscc)
    rating = body["rating"]
    assert (rating["seq"], rating["batch"], rating["grade"]) == (1, batch["root"], own["grade"])
    assert rating["pd"] == own["pd"] and rating["tx"] == batch["txs"][1]
    # The read made it the SME's chain entry (state proof) and it is the anchored record
    said = verify_proof(credit_env, body["proof"], tmp_path)
    assert said.exit_code == 0 and f"VALID: The credit rating of SME {uscc} (grade" in said.output
    said = verify_proof(credit_env, body["record_proof"], tmp_path)
    assert said.exit_code == 0 and " of 4 in the batch 'credit ratings' anchored by" in said.output
    record_file = tmp_path / "rating.json"
    record_file.write_bytes(canonical(body["rating_record"]))
    said = verify_proof(credit_env, body["record_proof"], tmp_path, "--file", str(record_file))
    assert said.exit_code == 0, said.output
    checked = sdk.verify_rating_answer(body, credit_env.genesis)
    assert checked.record_proof is not None and checked.rating["batch"] == batch["root"]

    # A tampered rating fails: the record file, the answer, the proven value
    record_file.write_bytes(canonical({**body["rating_record"], "grade": "AAA", "pd": "0.0001"}))
    said = verify_proof(credit_env, body["record_proof"], tmp_path, "--file", str(record_file))
    assert said.exit_code == 1 and "INVALID" in said.output
    forged = copy.deepcopy(body)
    forged["rating_record"]["score"] = "999.0"
    with pytest.raises(ProofError, match="not the record the batch proof proves"):
        sdk.verify_rating_answer(forged, credit_env.genesis)
    forged = copy.deepcopy(body)
    forged["proof"]["value"]["grade"] = "AAA"
    said = verify_proof(credit_env, forged["proof"], tmp_path)
    assert said.exit_code == 1 and "not the proven value" in said.output

    # A second read records a second inquiry on the same, already current, rating
    again = bank_read(credit_env, uscc)
    assert again["rating"]["seq"] == 1 and again["inquiry"]["n"] == 2
    assert again["inquiry"]["rating_tx"] == batch["txs"][1]
    seen = credit_env.get(f"/smes/{uscc}/inquiries", "sme-demo").json()
    assert seen["total_on_chain"] == 2


def test_the_newest_rating_is_the_one_read(credit_env: Any, batch: dict) -> None:
    uscc = batch["codes"][2]
    consent(credit_env, uscc)
    # Rated alone after the batch: the single rating is newer and is the one read
    single = credit_env.post(f"/smes/{uscc}/ratings", "city-agency")
    assert single.status_code == 201 and single.json()["seq"] == 1
    body = bank_read(credit_env, uscc)
    assert body["rating"]["seq"] == 1 and body["rating"]["batch"] is None
    assert body["record_proof"] is None
    # A later batch is newer again
    later = credit_env.post(
        "/ratings/batch", "city-agency", json={"usccs": [uscc, batch["codes"][3]], "anchor": True}
    )
    assert later.status_code == 200, later.text
    body = bank_read(credit_env, uscc)
    assert body["rating"]["seq"] == 2 and body["rating"]["batch"] == later.json()["root"]
    sdk.verify_rating_answer(body, credit_env.genesis)


def test_the_chain_refuses_stale_or_altered_batch_ratings(credit_env: Any, batch: dict) -> None:
    from services.credit import inquiry_proof_args
    from services.credit.models import BatchRatingRow

    uscc = batch["codes"][0]
    consent(credit_env, uscc)
    rt = credit_env.suite.services["credit"].state.credit
    key = credit_env.key("bank-a")
    with rt_session(credit_env) as session:
        row = session.query(BatchRatingRow).filter_by(uscc=uscc, root=batch["root"]).one()
        proof = inquiry_proof_args(session, row)
    args = {
        "uscc": uscc,
        "bank": "bank-a",
        "bank_key": key.public_hex,
        "purpose": "loan_application",
        "rating_seq": 1,
    }
    altered = {**proof, "rating": {**proof["rating"], "grade": "AAA"}}
    receipt = rt.ctx.relay("credit", "record_inquiry", {**args, "batch": altered})
    assert receipt["code"] == "bad_batch_rating"
    # Once a newer single rating is current, the old batch's rating cannot be made current
    assert credit_env.post(f"/smes/{uscc}/ratings", "city-agency").status_code == 201
    receipt = rt.ctx.relay("credit", "record_inquiry", {**args, "rating_seq": 2, "batch": proof})
    assert receipt["code"] == "stale_rating"


def rt_session(env: Any) -> Any:
    from sqlalchemy import MetaData

    from services.common.db import make_session_factory

    rt = env.suite.services["credit"].state.credit
    _engine, factory = make_session_factory(rt.ctx.database_url, MetaData())
    return factory()


def test_the_service_hashes_rating_records_as_the_contract_does() -> None:
    from services.credit import batch_record_hash

    entry = {
        "uscc": "911101080000000194",
        "pd": "0.01234567",
        "score": "611.3",
        "grade": "BB",
        "reasons": ["Attr27", "Attr11"],
        "features_hash": "ab" * 32,
        "period": "2023-Q4",
    }
    record = contract_terms.rating_record(entry, "cd" * 32)
    assert batch_record_hash(record) == contract_terms.record_hash(record)
    assert batch_record_hash({**record, "grade": "B"}) != contract_terms.record_hash(record)


def test_features_stored_before_packed_vectors_rate_the_same(credit_env: Any) -> None:
    from sqlalchemy import delete

    from services.credit.models import FeatureVectorRow

    (uscc,) = setup_smes(credit_env, range(20, 21))
    first = credit_env.post(f"/smes/{uscc}/ratings", "city-agency")
    assert first.status_code == 201, first.text
    with rt_session(credit_env) as session, session.begin():
        session.execute(delete(FeatureVectorRow).where(FeatureVectorRow.uscc == uscc))
    again = credit_env.post(f"/smes/{uscc}/ratings", "city-agency")
    assert again.status_code == 201, again.text
    assert again.json()["seq"] == first.json()["seq"] + 1
    for field in ("pd", "score", "grade", "features_hash", "period"):
        assert again.json()[field] == first.json()[field]
    assert again.json()["reasons"] == first.json()["reasons"]


def test_an_smes_rating_history_lists_batch_and_single_ratings(credit_env: Any) -> None:
    (uscc,) = setup_smes(credit_env, range(30, 31))
    history = f"/smes/{uscc}/ratings"
    assert credit_env.get(history, "sme-demo").json() == {"uscc": uscc, "ratings": []}
    rated = credit_env.post("/ratings/batch", "city-agency", json={"usccs": [uscc], "anchor": True})
    assert rated.status_code == 200, rated.text
    (entry,) = credit_env.get(history, "sme-demo").json()["ratings"]
    assert entry["seq"] is None and entry["batch"] == rated.json()["root"]
    # A single rating later: both listed, newest first; the SME sees its values
    single = credit_env.post(f"/smes/{uscc}/ratings", "sme-demo")
    assert single.status_code == 201
    ratings = credit_env.get(history, "sme-demo").json()["ratings"]
    assert [r["seq"] for r in ratings] == [1, None]
    assert ratings[0]["tx"] == single.json()["tx"]
    assert any(reason["value"] is not None for reason in ratings[0]["reasons"])
    # The regulator sees the same ratings without the SME's feature values; a bank is refused
    seen = credit_env.get(history, "regulator").json()["ratings"]
    assert [r["tx"] for r in seen] == [r["tx"] for r in ratings]
    assert all(reason["value"] is None for r in seen for reason in r["reasons"])
    refused = credit_env.get(history, "bank-a")
    assert refused.status_code == 403 and "lacks role" in refused.json()["error"]["message"]


def test_a_batch_rating_a_bank_read_is_listed_once(credit_env: Any) -> None:
    (uscc,) = setup_smes(credit_env, range(31, 32))
    rated = credit_env.post("/ratings/batch", "city-agency", json={"usccs": [uscc], "anchor": True})
    assert rated.status_code == 200, rated.text
    consent(credit_env, uscc)
    assert bank_read(credit_env, uscc)["rating"]["seq"] == 1
    (entry,) = credit_env.get(f"/smes/{uscc}/ratings", "sme-demo").json()["ratings"]
    assert entry["seq"] == 1
