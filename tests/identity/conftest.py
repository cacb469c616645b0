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

_CURVES = {"ed25519": ("OKP", "Ed25519", "EdDSA"), "p256": ("EC", "P-256", "ES256"),
           "p384": ("EC", "P-384", "ES384"), "p521": ("EC", "P-521", "ES512")}  # fmt: skip
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
    return {"id": f"{controller}#{name}", "type": "JsonWebKey", "controller": controller,
            "publicKeyJwk": public, "secretKeyJwk": secret}  # fmt: skip


@pytest.fixture
def vm() -> Any:
    """make_vm as a fixture: vm('p256')."""
    return make_vm


@pytest.fixture
def credential() -> dict[str, Any]:
    """A minimal residence credential (the suite's credential-minimal.json, our own content)."""
    return copy.deepcopy({
        "@context": [V2, EXAMPLES],
        "id": "urn:uuid:6f1c7c1e-0000-4000-8000-000000000001",
        "type": ["VerifiableCredential", "ResidenceCredential"],
        "issuer": ISSUER,
        "validFrom": "2024-01-01T00:00:00Z",
        "credentialSchema": {"id": "https://identity.city.example/schemas/residence.json",
                             "type": "JsonSchema"},
        "credentialSubject": {"id": HOLDER, "residence": {"city": "Metropolis", "district": "7"}},
    })  # fmt: skip


@pytest.fixture
def selective_credential() -> dict[str, Any]:
    """The suite's credential-nested-selective.json shape, with our own values."""
    return copy.deepcopy({
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
            "phoneNumbers": [{"number": "+86-755-0000-0001", "type": "work"},
                             {"number": "+86-755-0000-0002", "type": "mobile"}],
        },
    })  # fmt: skip


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
