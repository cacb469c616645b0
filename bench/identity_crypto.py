"""Identity crypto benchmarks: credentials issued and verified per second, ZK prove/verify times.

`run()` returns one JSON-able dict per result. The machine's own ceiling (raw Ed25519 sign and
verify per second through `cryptography`) is measured in the same run so rates read as ratios.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwcrypto import jwk

from services.identity import sd_jwt, vc_jose, zkp

CREDENTIAL: dict[str, Any] = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential", "ResidenceCredential"],
    "issuer": "https://identity.city.example/agencies/civil-registry",
    "validFrom": "2025-01-01T00:00:00Z",
    "credentialSubject": {
        "id": "did:example:citizen-42",
        "givenName": "Mei",
        "familyName": "Chen",
        "birthDate": "1990-04-02",
        "address": {"street": "1 Harbour Rd", "city": "Metropolis"},
    },
}
SD_PATHS = [
    "credentialSubject.givenName",
    "credentialSubject.familyName",
    "credentialSubject.birthDate",
    "credentialSubject.address",
]


def _rate(name: str, fn: Callable[[], object], seconds: float, **extra: Any) -> dict[str, Any]:
    fn()  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return {
        "bench": "identity_crypto",
        "name": name,
        "ops": count,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
        **extra,
    }


def _timed(name: str, fn: Callable[[], object], repeats: int) -> dict[str, Any]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return {
        "bench": "identity_crypto",
        "name": name,
        "repeats": repeats,
        "median_seconds": round(samples[len(samples) // 2], 4),
        "max_seconds": round(samples[-1], 4),
    }


def _ceiling(seconds: float) -> list[dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    public, message = key.public_key(), b"x" * 400
    signature = key.sign(message)
    return [
        _rate("ceiling_ed25519_sign", lambda: key.sign(message), seconds),
        _rate("ceiling_ed25519_verify", lambda: public.verify(signature, message), seconds),
    ]


def _credentials(seconds: float) -> list[dict[str, Any]]:
    results = []
    for alg, params in (
        ("EdDSA", {"kty": "OKP", "crv": "Ed25519"}),
        ("ES256", {"kty": "EC", "crv": "P-256"}),
    ):
        key = jwk.JWK.generate(**params)
        public = jwk.JWK(**key.export_public(as_dict=True))
        token = vc_jose.issue_credential(CREDENTIAL, key, kid="https://x.example#k")
        results.append(
            _rate(
                f"vc_jwt_issue_{alg}",
                partial(vc_jose.issue_credential, CREDENTIAL, key),
                seconds,
            )
        )
        results.append(
            _rate(
                f"vc_jwt_verify_{alg}",
                partial(vc_jose.verify_credential, token, public),
                seconds,
            )
        )
        sd = sd_jwt.issue_sd_credential(CREDENTIAL, key, disclose=SD_PATHS)
        results.append(
            _rate(
                f"sd_jwt_issue_{alg}",
                partial(sd_jwt.issue_sd_credential, CREDENTIAL, key, disclose=SD_PATHS),
                seconds,
                disclosures=len(SD_PATHS),
            )
        )
        results.append(
            _rate(
                f"sd_jwt_verify_{alg}",
                partial(sd_jwt.verify_sd_credential, sd, public),
                seconds,
            )
        )
    return results


def _key_bound_presentation(seconds: float) -> list[dict[str, Any]]:
    issuer = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    holder = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    token = sd_jwt.issue_sd_credential(CREDENTIAL, issuer, disclose=SD_PATHS, holder_key=holder)
    shown = sd_jwt.present(
        token,
        disclose=["credentialSubject.address"],
        holder_key=holder,
        nonce="n",
        audience="https://bank.example",
    )
    return [
        _rate(
            "sd_jwt_present_kb_EdDSA",
            lambda: sd_jwt.present(
                token,
                disclose=["credentialSubject.address"],
                holder_key=holder,
                nonce="n",
                audience="https://bank.example",
            ),
            seconds,
        ),
        _rate(
            "sd_jwt_verify_kb_EdDSA",
            lambda: sd_jwt.verify_sd_credential(
                shown, issuer, require_key_binding=True, nonce="n", audience="https://bank.example"
            ),
            seconds,
        ),
    ]


def _zk(repeats: int) -> list[dict[str, Any]]:
    today = date(2025, 6, 1)
    commitment, opening = zkp.commit(zkp.days_since_epoch(date(2000, 1, 1)))
    proof = zkp.prove_age_at_least(
        commitment, opening, min_age_years=18, reference=today, nonce="n"
    )
    city, city_opening = zkp.commit(440300)
    residency = zkp.prove_residency(city, city_opening, city_code=440300, nonce="n")
    return [
        _timed(
            "zk_age_at_least_prove",
            lambda: zkp.prove_age_at_least(
                commitment, opening, min_age_years=18, reference=today, nonce="n"
            ),
            repeats,
        ),
        _timed(
            "zk_age_at_least_verify",
            lambda: zkp.verify_age_at_least(
                proof, commitment=commitment, min_age_years=18, reference=today, nonce="n"
            ),
            repeats,
        ),
        _timed(
            "zk_residency_prove",
            lambda: zkp.prove_residency(city, city_opening, city_code=440300, nonce="n"),
            repeats,
        ),
        _timed(
            "zk_residency_verify",
            lambda: zkp.verify_residency(residency, commitment=city, city_code=440300, nonce="n"),
            repeats,
        ),
    ]


def run() -> list[dict[str, Any]]:
    """All identity crypto results; BENCH_SECONDS (default 1.0) sets each rate's duration."""
    seconds = float(os.environ.get("BENCH_SECONDS", "1.0"))
    repeats = max(3, int(5 * seconds))
    return [
        *_ceiling(seconds),
        *_credentials(seconds),
        *_key_bound_presentation(seconds),
        *_zk(repeats),
    ]


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
