"""Shared fixtures: issuer keys as W3C verification methods, and sample credentials."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jwcrypto import jwk

ISSUER = "https://identity.city.example/agencies/civil-registry"
HOLDER = "did:example:citizen-42"
V2 = "https://www.w3.org/ns/credentials/v2"
EXAMPLES = "https://www.w3.org/ns/credentials/examples/v2"

_CURVES = {
    "ed25519": ("OKP", "Ed25519", "EdDSA"),
    "p256": ("EC", "P-256", "ES256"),
    "p384": ("EC", "P-384", "ES384"),
    "p521": ("EC", "P-521", "ES512"),
}
_KEYS: dict[str, Any] = {}


def make_vm(name: str, controller: str = ISSUER) -> dict[str, Any]:
    """A verification method with publicKeyJwk and secretKeyJwk, as the suite's VM files."""
    if name not in _KEYS:
        kty, crv, _ = _CURVES[name]
        _KEYS[name] = jwk.JWK.generate(kty=kty, crv=crv)
    key = _KEYS[name]
    alg = _CURVES[name][2]
    thumbprint = key.thumbprint()
    public = {**key.export_public(as_dict=True), "alg": alg, "kid": thumbprint}
    secret = {**key.export_private(as_dict=True), "alg": alg, "kid": thumbprint}
    return {
        "id": f"{controller}#{name}",
        "type": "JsonWebKey",
        "controller": controller,
        "publicKeyJwk": public,
        "secretKeyJwk": secret,
    }


@pytest.fixture
def vm() -> Any:
    """make_vm as a fixture: vm('p256')."""
    return make_vm


@pytest.fixture
def credential() -> dict[str, Any]:
    """A minimal residence credential (the suite's credential-minimal.json, our own content)."""
    return copy.deepcopy(
        {
            "@context": [V2, EXAMPLES],
            "id": "urn:uuid:6f1c7c1e-0000-4000-8000-000000000001",
            "type": ["VerifiableCredential", "ResidenceCredential"],
            "issuer": ISSUER,
            "validFrom": "2024-01-01T00:00:00Z",
            "credentialSchema": {
                "id": "https://identity.city.example/schemas/residence.json",
                "type": "JsonSchema",
            },
            "credentialSubject": {
                "id": HOLDER,
                "residence": {"city": "Metropolis", "district": "7"},
            },
        }
    )


@pytest.fixture
def selective_credential() -> dict[str, Any]:
    """The suite's credential-nested-selective.json shape, with our own values."""
    return copy.deepcopy(
        {
            "@context": [V2, EXAMPLES],
            "type": ["VerifiableCredential", "CitizenCredential"],
            "issuer": ISSUER,
            "validFrom": "2024-01-01T00:00:00Z",
            "credentialSubject": {
                "id": HOLDER,
                "firstName": "Mei",
                "lastName": "Chen",
                "birthDate": "1990-04-02",
                "address": {"street": "1 Harbour Rd", "city": "Metropolis", "postalCode": "518000"},
                "phoneNumbers": [
                    {"number": "+86-755-0000-0001", "type": "work"},
                    {"number": "+86-755-0000-0002", "type": "mobile"},
                ],
            },
        }
    )


@pytest.fixture
def presentation() -> Any:
    """Build a VCDM 2.0 presentation around enveloped credentials."""

    def build(*entries: dict[str, Any], holder: str | None = HOLDER) -> dict[str, Any]:
        document: dict[str, Any] = {
            "@context": [V2, EXAMPLES],
            "id": "urn:uuid:6f1c7c1e-0000-4000-8000-0000000000ff",
            "type": ["VerifiablePresentation"],
            "verifiableCredential": list(entries),
        }
        if holder is not None:
            document["holder"] = holder
        return document

    return build


# -- the identity service in a real embedded suite ------------------------------------------------


class IdentityHarness:
    """A running suite with the identity service, tokens for the demo orgs, and helpers."""

    def __init__(self, suite: Any, client: Any) -> None:
        from chain.home import SuiteHome

        self.suite = suite
        self.client = client
        self.home = SuiteHome(suite.data)
        self.genesis = self.home.genesis()
        self.ledger = suite.services["identity"].state.env.chain.ledger

    def key(self, org: str) -> Any:
        return self.home.org_key(org)

    def token(self, org: str, audience: str = "identity", **kw: Any) -> str:
        from chain.auth import mint_token

        return mint_token(self.key(org), org=org, audience=audience, **kw)

    def headers(self, org: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org)}"}

    def call(self, org: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, f"/identity{path}", headers=self.headers(org), **kw)

    def chain_call(self, org: str, contract: str, method: str, args: dict[str, Any]) -> Any:
        from services.common.ledger import call

        return call(self.ledger, self.key(org), contract, method, args)

    def govern(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Pass a governance `invoke` of an identity method: agency proposes, regulator approves."""
        proposal = self.chain_call(
            "city-agency",
            "governance",
            "propose",
            {
                "action": "invoke",
                "params": {"contract": "identity", "method": method, "args": args},
            },
        )
        assert proposal["status"] == "ok", proposal
        vote = self.chain_call(
            "regulator", "governance", "vote", {"proposal": proposal["tx"], "approve": True}
        )
        assert vote["status"] == "ok", vote
        return vote


RESIDENCE_SCHEMA = {
    "type": "object",
    "properties": {
        "givenName": {"type": "string", "minLength": 1},
        "familyName": {"type": "string", "minLength": 1},
        "birthDate": {
            "type": "string",
            "format": "date",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        },
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        },
        "cityCode": {"type": "integer", "minimum": 0},
    },
    "required": ["givenName", "familyName", "birthDate"],
    "additionalProperties": False,
}


@pytest.fixture
def identity(tmp_path: Any, db_url: str) -> Any:
    """The suite (validator + identity service) on a fresh data dir, served by a TestClient."""
    from fastapi.testclient import TestClient

    from smartcity.registry import IDENTITY
    from smartcity.suite import open_suite

    suite = open_suite(tmp_path / "data", database_url=db_url, services=[IDENTITY])
    with TestClient(suite.app) as client:
        yield IdentityHarness(suite, client)


@pytest.fixture
def issuer(identity: Any) -> Any:
    """city-agency with signing keys, the ResidenceCredential type, admitted by governance."""
    made = identity.call(
        "city-agency",
        "POST",
        "/types",
        json={"name": "ResidenceCredential", "schema": RESIDENCE_SCHEMA},
    )
    assert made.status_code == 201, made.text
    keys = identity.call("city-agency", "POST", "/issuers/me/keys", json={})
    assert keys.status_code == 201, keys.text
    identity.govern("admit_issuer", {"org": "city-agency", "types": ["ResidenceCredential"]})
    return identity


@pytest.fixture
def holder(identity: Any) -> Any:
    """A citizen's key pair and the DID city-agency registered for it."""
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    made = identity.call(
        "city-agency",
        "POST",
        "/dids",
        json={"keys": [{"publicKeyJwk": key.export_public(as_dict=True)}]},
    )
    assert made.status_code == 201, made.text
    return type("Holder", (), {"key": key, "did": made.json()["did"], "doc": made.json()})
