"""Credit service benchmarks over real HTTP on the embedded suite.

- single rating latency (POST /credit/smes/{uscc}/ratings: features -> model -> chain commit)
- bank read latency (GET /credit/smes/{uscc}/rating under consent: inquiry committed on the
  chain, state proof of the rating and tx proof of the inquiry in the answer)
- batch ratings per second (10,000 SMEs in one POST /credit/ratings/batch, all on the chain:
  one anchored Merkle root and one rating-batch record)
- a bank's first read of a batch-rated SME (the read makes the anchored rating current on the
  chain: audit path checked by the contract) with its proofs, checked offline
- hold-out AUC of the shipped default model, re-split from the development data exactly as at
  training time, when /work/shared/data/credit is present

The model the service rates with is the shipped default model when installed, else one trained
here on synthetic SMEs (said in each result). The machine's ceiling (Ed25519 verifications per
second, what every chain transaction costs) is measured in the same run.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from sqlalchemy import MetaData, insert
from sqlalchemy.orm import Session

from bench._ceiling import ed25519_verifications_per_s
from chain.auth import mint_token
from chain.home import SuiteHome
from services.common.db import make_session_factory
from services.credit import (
    SHIPPED_MODEL_DIR,
    features_hash,
    latest_features,
    pack,
    period_sort_key,
    sdk,
    statement_csv,
    synthetic_statements,
)
from services.credit.models import FeatureRow, FeatureVectorRow
from services.credit.scoring.artefact import load_model, save_model
from services.credit.scoring.dataset import labelled_from_frame, read_labelled_csv
from smartcity.ops import settle_heap
from smartcity.registry import CREDIT
from smartcity.suite import open_suite

ENTRY = CREDIT
DEV_DATA = Path("/work/shared/data/credit/polish_bankruptcy_1year_dev.csv")
N_BATCH = int(os.environ.get("CREDIT_BENCH_SMES", "10000"))
N_SINGLE = 200
N_BATCH_READS = 50


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {
        "n": len(samples),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def _install_model(data: Path) -> tuple[str, str]:
    """The model directory the service will find, and where it came from."""
    if (SHIPPED_MODEL_DIR / "metadata.json").is_file():
        return load_model(SHIPPED_MODEL_DIR).sha256, "shipped default model"
    from services.credit import training_frame
    from services.credit.scoring.training import TrainingConfig, train

    config = TrainingConfig(cv_folds=0)
    model = save_model(
        train(labelled_from_frame(training_frame(4000, seed=1)), config=config),
        data / "credit" / "models" / "synthetic",
    )
    return model.sha256, "model trained on synthetic SMEs (no shipped default model)"


class _Server:
    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/credit"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _service_run(workdir: Path) -> list[dict[str, Any]]:
    data = workdir / "data"
    sha, origin = _install_model(data)
    suite = open_suite(data, services=[ENTRY])
    settle_heap()  # as `smartcity up` does before it serves
    home = SuiteHome(data)
    chain_id = home.genesis().chain_id
    url = suite.services["credit"].state.credit.ctx.database_url
    results: list[dict[str, Any]] = []

    def auth(org: str) -> dict[str, str]:
        token = mint_token(home.org_key(org), org=org, audience="credit", ttl_s=3600)
        return {"Authorization": f"Bearer {token}"}

    with _Server(suite.app) as base, httpx.Client(base_url=base, timeout=120) as http:
        height = lambda: http.get("/chain-params", headers=auth("bank-a")).json()["height"]  # noqa: E731
        http.get("/models", headers=auth("bank-a")).raise_for_status()
        proposal = sdk.model_proposal_tx(
            home.org_key("city-agency"),
            chain_id=chain_id,
            expiry_height=height() + 1000,
            sha256=sha,
        )
        http.post(
            f"/models/{sha}/governance",
            headers=auth("city-agency"),
            json={"tx": proposal.to_json()},
        ).raise_for_status()
        vote = sdk.vote_tx(
            home.org_key("regulator"),
            chain_id=chain_id,
            expiry_height=height() + 1000,
            proposal=proposal.hash,
        )
        http.post(
            f"/models/{sha}/governance", headers=auth("regulator"), json={"tx": vote.to_json()}
        ).raise_for_status()

        # SMEs: registered on the chain through the API, in one batch request
        statements = synthetic_statements(N_BATCH, seed=11)
        codes = list(dict.fromkeys(statements["uscc"]))
        started = time.perf_counter()
        http.post(
            "/smes/batch",
            headers=auth("city-agency"),
            json={"smes": [{"uscc": c, "org": "sme-demo"} for c in codes]},
        ).raise_for_status()
        register_s = time.perf_counter() - started
        results.append(
            {
                "bench": "credit_service",
                "name": "register_smes_batch",
                "smes": len(codes),
                "seconds": round(register_s, 3),
                "per_second": round(len(codes) / register_s, 1),
            }
        )

        # One SME uploads its statements over HTTP; the rest are seeded straight into the DB
        first = codes[0]
        files = {"file": ("s.csv", statement_csv(statements, first), "text/csv")}
        http.post(
            f"/smes/{first}/statements", headers=auth("sme-demo"), files=files
        ).raise_for_status()
        _seed_features(url, statements, skip={first})

        samples = []
        for _ in range(N_SINGLE):
            t0 = time.perf_counter()
            http.post(f"/smes/{first}/ratings", headers=auth("sme-demo")).raise_for_status()
            samples.append(time.perf_counter() - t0)
        results.append(
            {
                "bench": "credit_service",
                "name": "single_rating_http",
                "model": origin,
                **_percentiles(samples),
                "target": "p99 < 50 ms",
            }
        )

        end_ms = int(time.time() * 1000) + 86_400_000
        consent = sdk.grant_consent_tx(
            home.org_key("sme-demo"),
            chain_id=chain_id,
            expiry_height=height() + 1000,
            uscc=first,
            bank="bank-a",
            purpose="loan_application",
            end_ms=end_ms,
        )
        http.post(
            "/consents", headers=auth("sme-demo"), json={"tx": consent.to_json()}
        ).raise_for_status()
        samples = []
        bank = auth("bank-a")
        for _ in range(N_SINGLE):
            t0 = time.perf_counter()
            http.get(
                f"/smes/{first}/rating", headers=bank, params={"purpose": "loan_application"}
            ).raise_for_status()
            samples.append(time.perf_counter() - t0)
        results.append(
            {
                "bench": "credit_service",
                "name": "bank_read_with_proof_http",
                **_percentiles(samples),
                "target": "p99 < 50 ms",
            }
        )

        started = time.perf_counter()
        response = http.post("/ratings/batch", headers=auth("city-agency"), json={"usccs": codes})
        response.raise_for_status()
        batch_s = time.perf_counter() - started
        body = response.json()
        results.append(
            {
                "bench": "credit_service",
                "name": "batch_ratings_http",
                "model": origin,
                "smes": len(codes),
                "rated": body["rated"],
                "failed": len(body["failed"]),
                "chain_txs": len(body["txs"]),
                "seconds": round(batch_s, 3),
                "server_seconds": body["seconds"],
                "ratings_per_s": round(body["rated"] / batch_s, 1),
                "target": "10,000 SMEs in <= 3 s",
            }
        )
        results.append(_batch_reads(http, home, chain_id, codes[1 : 1 + N_BATCH_READS], auth))
    suite.node.stop()
    return results


def _batch_reads(
    http: httpx.Client, home: SuiteHome, chain_id: str, codes: list[str], auth: Any
) -> dict[str, Any]:
    """A bank's first read of batch-rated SMEs: each makes its anchored rating current."""
    sme, bank = auth("sme-demo"), auth("bank-a")
    end_ms = int(time.time() * 1000) + 86_400_000
    for code in codes:
        height = http.get("/chain-params", headers=bank).json()["height"]
        tx = sdk.grant_consent_tx(
            home.org_key("sme-demo"),
            chain_id=chain_id,
            expiry_height=height + 1000,
            uscc=code,
            bank="bank-a",
            purpose="loan_application",
            end_ms=end_ms,
        )
        http.post("/consents", headers=sme, json={"tx": tx.to_json()}).raise_for_status()
    samples, answers = [], []
    for code in codes:
        t0 = time.perf_counter()
        response = http.get(
            f"/smes/{code}/rating", headers=bank, params={"purpose": "loan_application"}
        )
        response.raise_for_status()
        samples.append(time.perf_counter() - t0)
        answers.append(response.json())
    verified = sum(
        1 for a in answers if sdk.verify_rating_answer(a, home.genesis()).record_proof is not None
    )
    return {
        "bench": "credit_service",
        "name": "bank_first_read_of_batch_rating_http",
        **_percentiles(samples),
        "verified_offline_with_record_proof": verified,
    }


def _seed_features(url: str, statements: Any, *, skip: set[str]) -> None:
    """Each SME's latest-period features (JSON and packed), as an upload would have stored them."""
    features = latest_features(statements)
    period = str(statements["period"].max())
    engine, factory = make_session_factory(url, MetaData())
    rows = []
    for uscc, values in zip(features.index, features.to_numpy(), strict=True):
        if uscc in skip:
            continue
        mapped = {
            n: None if np.isnan(v) else float(v)
            for n, v in zip(features.columns, values, strict=True)
        }
        rows.append(
            {
                "uscc": uscc,
                "period": period,
                "sort_key": period_sort_key(period),
                "features": mapped,
                "features_hash": features_hash(uscc, period, mapped),
            }
        )
    vectors = [
        {"uscc": r["uscc"], "period": r["period"], "values": pack(r["features"])} for r in rows
    ]
    with factory() as session, session.begin():
        _insert(session, FeatureRow, rows)
        _insert(session, FeatureVectorRow, vectors)
    engine.dispose()


def _insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2000):
        session.execute(insert(table), rows[start : start + 2000])


def _holdout_auc() -> list[dict[str, Any]]:
    if not DEV_DATA.is_file() or not (SHIPPED_MODEL_DIR / "metadata.json").is_file():
        return [
            {
                "bench": "credit_service",
                "name": "default_model_holdout_auc",
                "skipped": "needs the shipped default model and " + str(DEV_DATA),
            }
        ]
    from sklearn.model_selection import train_test_split

    from services.credit.scoring.metrics import discrimination

    model = load_model(SHIPPED_MODEL_DIR)
    meta = model.metadata
    data = read_labelled_csv(DEV_DATA, label=meta.get("label", "class"))
    config = meta["config"]
    _, x_test, _, y_test = train_test_split(
        data.features[model.feature_names],
        data.labels,
        test_size=config["test_size"],
        stratify=data.labels,
        random_state=config["seed"],
    )
    metrics = discrimination(y_test, model.predict_pd(x_test))
    return [
        {
            "bench": "credit_service",
            "name": "default_model_holdout_auc",
            **metrics,
            "same_data_as_training": data.sha256 == meta.get("data_sha256"),
            "recorded_holdout_auc": meta["metrics"]["holdout"]["gbm"]["auc"],
            "reference": "Zieba et al. 2016: 0.959",
        }
    ]


def run() -> list[dict[str, Any]]:
    ceiling = {
        "bench": "credit_service",
        "name": "ceiling",
        "ed25519_verifications_per_s": round(ed25519_verifications_per_s(1.0), 1),
    }
    with tempfile.TemporaryDirectory() as tmp:
        service = _service_run(Path(tmp))
    return [ceiling, *service, *_holdout_auc()]
