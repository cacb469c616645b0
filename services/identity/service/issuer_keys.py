"""An issuer's signing keys: generated here, sealed in the vault, published in its DID."""

from __future__ import annotations

from typing import Any

from jwcrypto import jwk
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.identity import contract as c
from services.identity.credentials.jose import public_jwk
from services.identity.errors import (
    BadRequest,
    DidDeactivated,
)
from services.identity.models import IssuerKey
from services.identity.runtime import Runtime
from services.identity.service.dids import did_record, public_key_args

ALG_CURVES = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}


def setup_issuer_keys(
    *, rt: Runtime, session: Session, org: str, algs: list[str]
) -> tuple[dict[str, Any], str]:
    """Generate (or rotate) the org's signing keys and publish them in did:smartcity:<org>.

    The private halves stay sealed in this service's database (custodial demo mode); the public
    halves are the DID's assertion methods on the chain, signed by the org's own chain key.
    """
    did = c.did_of(org)
    record: dict[str, Any] | None = rt.chain.read(c.did_key(org))
    wanted = sorted(set(algs))
    new_keys = {
        alg: jwk.JWK.generate(kty=ALG_CURVES[alg][0], crv=ALG_CURVES[alg][1]) for alg in wanted
    }
    methods = {
        alg: (f"{alg.lower()}-{key.thumbprint()[:12]}", key) for alg, key in new_keys.items()
    }
    kept = []
    if record is not None:
        if record["deactivated"]:
            raise DidDeactivated(f"{did} is deactivated: it cannot register keys")
        kept = [
            vm for vm in record["verificationMethod"] if vm["publicKeyJwk"]["alg"] not in wanted
        ]
    vms = [
        *kept,
        *({"id": f, "publicKeyJwk": public_key_args(public_jwk(k))} for f, k in methods.values()),
    ]
    args: dict[str, Any] = {
        "msid": org,
        "verification_methods": vms,
        "authentication": [],
        "assertion": [vm["id"] for vm in vms],
    }
    if record is None:
        receipt = rt.chain.submit(org, "create_did", args)
    else:
        receipt = rt.chain.submit(org, "update_did", {**args, "version": record["versionId"]})
    for old in session.scalars(select(IssuerKey).where(IssuerKey.org == org, IssuerKey.active)):
        if old.alg in wanted:
            old.active = False
    for alg, (fragment, key) in methods.items():
        kid = f"{did}#{fragment}"
        sealed = rt.vault.seal(key.export_private(as_dict=True), f"issuer_key:{kid}")
        session.add(
            IssuerKey(
                kid=kid,
                org=org,
                alg=alg,
                public_jwk=public_key_args(public_jwk(key)),
                sealed_private_jwk=sealed,
                active=True,
                created_at=rt.now(),
            )
        )
        rt.signing_keys[kid] = key
    return did_record(rt=rt, did=did), str(receipt["tx"])


def signing_key(*, rt: Runtime, session: Session, org: str, alg: str) -> tuple[str, jwk.JWK]:
    """The org's active signing key for `alg`, unsealed (and cached)."""
    row = session.scalars(
        select(IssuerKey).where(IssuerKey.org == org, IssuerKey.alg == alg, IssuerKey.active)
    ).first()
    if row is None:
        raise BadRequest(
            f"{org} has no {alg} signing key: POST /identity/issuers/me/keys first",
            code="no_signing_key",
        )
    if row.kid not in rt.signing_keys:
        opened = rt.vault.open(row.sealed_private_jwk, f"issuer_key:{row.kid}")
        rt.signing_keys[row.kid] = jwk.JWK(**opened)
    return row.kid, rt.signing_keys[row.kid]
