"""The genesis document: chain id, validators, observers, organisations, contracts, parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chain.block import validators_hash
from chain.contracts import governance, membership
from chain.encoding import canonical
from chain.errors import GenesisError
from chain.state import CommittedState, Overlay, StateView
from chain.suites import DEFAULT_SUITE, SUITE_NAMES, CryptoSuite, suite_for


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ValidatorEntry(_Model):
    name: str = Field(min_length=1, max_length=64)
    pub_key: str = Field(pattern=membership.PUB_KEY)
    power: int = Field(default=1, ge=1, le=1000)


class ObserverEntry(_Model):
    name: str = Field(min_length=1, max_length=64)
    pub_key: str = Field(pattern=membership.PUB_KEY)


class OrgEntry(_Model):
    id: str = Field(pattern=membership.ORG_ID)
    name: str = Field(min_length=1, max_length=128)
    roles: list[str]
    keys: list[str] = Field(min_length=1)


class ContractEntry(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    path: str
    code_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class Threshold(_Model):
    num: int = Field(default=1, ge=1)
    den: int = Field(default=2, ge=2)


class Params(_Model):
    max_block_txs: int = Field(default=5000, ge=1, le=100_000)
    max_ttl_blocks: int = Field(default=10_000, ge=1, le=1_000_000)


class Genesis(_Model):
    chain_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")
    genesis_time_ms: int = Field(ge=0)
    validators: list[ValidatorEntry] = Field(min_length=1)
    observers: list[ObserverEntry] = Field(default_factory=list)
    organisations: list[OrgEntry] = Field(default_factory=list)
    governance: Threshold = Field(default_factory=Threshold)
    contracts: list[ContractEntry] = Field(default_factory=list)
    params: Params = Field(default_factory=Params)
    crypto: str = DEFAULT_SUITE

    @field_validator("crypto")
    @classmethod
    def known_suite(cls, name: str) -> str:
        if name not in SUITE_NAMES:
            raise ValueError(
                f"unknown crypto suite {name!r}: a genesis names one of {', '.join(SUITE_NAMES)}"
            )
        return name

    @model_validator(mode="after")
    def distinct(self) -> Genesis:
        suite = self.suite
        keys = [v.pub_key for v in self.validators] + [o.pub_key for o in self.observers]
        for pub in keys + [k for o in self.organisations for k in o.keys]:
            # Verify every key is one of the chain's suite
            if not suite.is_usable_public_key(pub):
                raise ValueError(f"{pub[:16]}… is not a usable {membership.KEY_SHAPES[suite.name]}")
        if len(set(keys)) != len(keys):
            raise ValueError("validators and observers must have distinct keys")
        if len({o.id for o in self.organisations}) != len(self.organisations):
            raise ValueError("organisation ids must be distinct")
        if self.governance.num >= self.governance.den:
            raise ValueError("governance threshold num/den must be below 1")
        return self

    @property
    def suite(self) -> CryptoSuite:
        """The chain's one hash and signature scheme (SuiteUnavailable if it cannot run here)."""
        return suite_for(self.crypto)

    @property
    def hash(self) -> str:
        """The suite's hash of the canonical genesis document: block 1's prev_hash."""
        return self.suite.hash(canonical(self.to_json())).hex()

    def to_json(self) -> dict[str, Any]:
        """The document; `crypto` is left out when it is the default, so a genesis written
        before suites existed keeps its bytes and its hash."""
        value = self.model_dump(mode="json")
        if value["crypto"] == DEFAULT_SUITE:
            del value["crypto"]
        return value

    def validator_powers(self) -> dict[str, int]:
        return {v.pub_key: v.power for v in self.validators}

    @property
    def validators_hash(self) -> str:
        return validators_hash([v.model_dump() for v in self.validators], self.suite.hasher)


def load_genesis(path: Path) -> Genesis:
    try:
        return parse_genesis(json.loads(path.read_text()))
    except OSError as exc:
        raise GenesisError(f"cannot read genesis {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise GenesisError(f"genesis {path} is not JSON: {exc}") from exc


def parse_genesis(value: Any) -> Genesis:
    try:
        return Genesis.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GenesisError(f"invalid genesis at {where}: {first['msg']}") from exc


def initial_state(genesis: Genesis) -> dict[tuple[str, str], Any]:
    """The state writes genesis makes: organisations, committee, validators, contracts."""
    overlay = Overlay(Overlay(CommittedState.empty()))
    gov = StateView(overlay, governance.NAMESPACE, privileged=True)
    members = gov.other(membership.NAMESPACE)
    gov.put("config", {"num": genesis.governance.num, "den": genesis.governance.den})
    if genesis.crypto != DEFAULT_SUITE:  # the default chain's state stays as it was
        gov.put(membership.SUITE_KEY[1], genesis.crypto)
    gov.put("committee", [])
    gov.put(
        "validators",
        sorted((v.model_dump() for v in genesis.validators), key=lambda v: v["pub_key"]),
    )
    for org in genesis.organisations:
        membership.admit_org(
            members, org_id=org.id, name=org.name, roles=[], keys=org.keys, height=0
        )
        governance.set_roles(gov, org.id, org.roles)
    for contract in genesis.contracts:
        gov.put(
            f"contract:{contract.name}",
            {"path": contract.path, "code_hash": contract.code_hash, "height": 0},
        )
    return dict(overlay.writes)
