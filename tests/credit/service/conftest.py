"""A real embedded suite with the credit service, a small model trained on synthetic SMEs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from chain.auth import mint_token
from chain.crypto import SigningKey
from chain.genesis import Genesis
from chain.home import SuiteHome
from chain.suites import SuiteKey
from chain.tx import Tx
from services.common.ledger import EmbeddedLedger, LedgerPort, call
from services.credit import sdk, synthetic_statements, training_frame
from services.credit.scoring.artefact import read_metadata, save_model
from services.credit.scoring.dataset import labelled_from_frame
from services.credit.scoring.training import TrainingConfig, train
from smartcity.registry import CREDIT
from smartcity.suite import Suite, open_suite

from ...conftest import fresh_database_url

ENTRY = CREDIT
FAST = TrainingConfig(seed=7, cv_folds=0, calibration_folds=3, max_iter=40)


@pytest.fixture(scope="session")
def polish_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Polish-ratio (Attr1..Attr64) model trained on synthetic SMEs in a few seconds."""
    out = tmp_path_factory.mktemp("credit-model") / "model"
    save_model(train(labelled_from_frame(training_frame(800, seed=1)), config=FAST), out)
    return out


@dataclass
class CreditEnv:
    client: TestClient
    suite: Suite
    home: SuiteHome
    model_sha: str
    statements: Any  # synthetic statements (pandas DataFrame) for SMEs 0..n-1

    @property
    def data(self) -> Path:
        return self.suite.data

    @property
    def genesis(self) -> Genesis:
        return self.home.genesis()

    @property
    def ledger(self) -> LedgerPort:
        return EmbeddedLedger(self.suite.node)

    def key(self, org: str) -> SuiteKey:
        return self.home.org_key(org)

    def auth(self, org: str, audience: str = "credit") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.key(org), org=org, audience=audience)}"}

    def get(self, path: str, org: str, **kw: Any) -> Any:
        return self.client.get(f"/credit{path}", headers=self.auth(org), **kw)

    def post(self, path: str, org: str, **kw: Any) -> Any:
        return self.client.post(f"/credit{path}", headers=self.auth(org), **kw)

    def expiry(self) -> int:
        return self.ledger.height() + 1000

    def signed(self, tx: Tx) -> dict[str, Any]:
        return {"tx": tx.to_json()}

    def approve_model(self, sha: str) -> dict[str, Any]:
        """City agency proposes, the regulator votes: more than half the committee approves."""
        chain_id = self.genesis.chain_id
        proposal = sdk.model_proposal_tx(
            self.key("city-agency"), chain_id=chain_id, expiry_height=self.expiry(), sha256=sha
        )
        first = self.post(f"/models/{sha}/governance", "city-agency", json=self.signed(proposal))
        assert first.status_code == 200, first.text
        vote = sdk.vote_tx(
            self.key("regulator"),
            chain_id=chain_id,
            expiry_height=self.expiry(),
            proposal=proposal.hash,
        )
        second = self.post(f"/models/{sha}/governance", "regulator", json=self.signed(vote))
        assert second.status_code == 200, second.text
        return dict(second.json())

    def add_sme_org(self, org: str) -> SigningKey:
        """Admit another SME organisation through governance (agency proposes, regulator votes)."""
        key = SigningKey.generate()
        params = {"id": org, "name": org, "roles": ["sme"], "keys": [key.public_hex]}
        receipt = call(
            self.ledger,
            self.key("city-agency"),
            "governance",
            "propose",
            {"action": "add_org", "params": params},
        )
        call(
            self.ledger,
            self.key("regulator"),
            "governance",
            "vote",
            {"proposal": receipt["tx"], "approve": True},
        )
        return key


def _database_url(tmp: Path) -> tuple[str | None, Callable[[], None]]:
    """A fresh PostgreSQL schema when SMARTCITY_DATABASE_URL names one; else the suite's SQLite."""
    if not os.environ.get("SMARTCITY_DATABASE_URL", "").startswith("postgresql"):
        return None, lambda: None
    return fresh_database_url("postgresql", tmp)


@pytest.fixture(scope="module")
def credit_env(
    tmp_path_factory: pytest.TempPathFactory, polish_model_dir: Path
) -> Iterator[CreditEnv]:
    """One suite per test module (tests in a module use distinct SMEs)."""
    data = tmp_path_factory.mktemp("suite") / "data"
    shutil.copytree(polish_model_dir, data / "credit" / "models" / "test")
    url, drop = _database_url(tmp_path_factory.mktemp("db"))
    suite = open_suite(data, database_url=url, services=[ENTRY])
    sha = str(read_metadata(polish_model_dir)["artefact_sha256"])
    try:
        with TestClient(suite.app) as client:
            yield CreditEnv(client, suite, SuiteHome(data), sha, synthetic_statements(40, seed=3))
    finally:
        drop()
