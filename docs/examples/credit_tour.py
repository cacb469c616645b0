"""The SME credit story against a running suite: rating, refusal, consent, audited read, proof.

Run from the clone with the suite up (`make up`):  python docs/examples/credit_tour.py
It writes rating.answer.json and rating.proof.json into --out (default data/tour); check the
proof offline with `smartcity verify-proof data/tour/rating.proof.json --genesis data/genesis.json`.
It can be run again on the same chain: a consent left from an earlier run is withdrawn first.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import httpx

from chain.auth import mint_token
from chain.home import SuiteHome
from services.credit import sdk
from smartcity.proofs import explain

USCC = "91440300000000019B"  # a valid code (GB 32100-2015 check character) for sme-demo
STATEMENTS = Path(__file__).with_name("statements.csv")


def client(home: SuiteHome, api: str, org: str) -> httpx.Client:
    """An HTTP client for the credit service that acts as `org` (a token from its own key)."""
    token = mint_token(home.org_key(org), org=org, audience="credit")
    return httpx.Client(
        base_url=f"{api}/credit", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def say(step: str, response: httpx.Response) -> dict[str, Any]:
    """Print one step's outcome and return its JSON body."""
    print(f"{step}: HTTP {response.status_code}")
    body: dict[str, Any] = response.json()
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--home", default="data")
    parser.add_argument("--out", default="data/tour", help="Folder for the answer and its proof.")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = SuiteHome(Path(args.home))
    sme, bank, regulator = (client(home, args.api, o) for o in ("sme-demo", "bank-a", "regulator"))

    # 1. The SME registers, uploads three years of statements and is rated
    # 409 when a run before registered it; the name is the one in the chain's genesis
    sme.post("/smes", json={"uscc": USCC, "name": "Demo Precision Parts Co."})
    upload = {"file": ("fy.csv", STATEMENTS.read_bytes(), "text/csv")}
    sme.post(f"/smes/{USCC}/statements", files=upload).raise_for_status()
    rating = say("SME rated", sme.post(f"/smes/{USCC}/ratings").raise_for_status())
    print(f"  grade {rating['grade']}, score {rating['score']:.0f}, PD {rating['pd']:.4f}")

    params = sme.get("/chain-params").raise_for_status().json()
    # A consent granted by an earlier run of this tour is withdrawn first, so the bank is refused
    consents = sme.get("/consents").raise_for_status().json()["consents"]
    if any(c["live"] for c in consents if (c["uscc"], c["bank"]) == (USCC, "bank-a")):
        withdraw = sdk.revoke_consent_tx(
            home.org_key("sme-demo"),
            chain_id=params["chain_id"],
            expiry_height=params["expiry_height"],
            uscc=USCC,
            bank="bank-a",
            purpose="loan_application",
        )
        say(
            "consent of an earlier run withdrawn",
            sme.post("/consents/revocations", json={"tx": withdraw.to_json()}).raise_for_status(),
        )

    # 2. A bank without the SME's consent is refused, with the reason
    refused = bank.get(f"/smes/{USCC}/rating", params={"purpose": "loan_application"})
    if refused.status_code != 403:
        raise SystemExit(f"expected 403 before consent, got {refused.status_code}")
    print(f"bank-a before consent: HTTP 403 {refused.json()['error']['code']}")

    # 3. The SME signs a 90-day consent for bank-a's loan application; the service submits it
    tx = sdk.grant_consent_tx(
        home.org_key("sme-demo"),
        chain_id=params["chain_id"],
        expiry_height=params["expiry_height"],
        uscc=USCC,
        bank="bank-a",
        purpose="loan_application",
        end_ms=int(time.time() * 1000) + 90 * 86_400_000,
    )
    say("consent granted", sme.post("/consents", json={"tx": tx.to_json()}).raise_for_status())

    # 4. The bank reads the rating: the read is recorded on the chain, the answer carries proofs
    response = bank.get(f"/smes/{USCC}/rating", params={"purpose": "loan_application"})
    answer = say("bank-a reads the rating", response.raise_for_status())
    (out / "rating.answer.json").write_text(json.dumps(answer, indent=2))
    (out / "rating.proof.json").write_text(json.dumps(answer["proof"], indent=2))
    verified = sdk.verify_rating_answer(answer, home.genesis())
    said = explain(answer["proof"], verified.rating_proof, home.genesis())
    print(f"  verified offline: {said.sentence}")
    for reason in answer["rating"]["reasons"][:3]:
        print(f"  reason: {reason['text']}")

    # 5. The SME sees who looked; the regulator sees every inquiry
    seen = sme.get(f"/smes/{USCC}/inquiries").raise_for_status().json()
    latest = seen["inquiries"][0]["bank"]
    print(f"SME sees {len(seen['inquiries'])} inquiry(ies); latest by {latest}")
    audit = regulator.get("/inquiries").raise_for_status().json()
    print(f"regulator sees {audit['total_on_chain']} inquiry(ies) on the chain")


if __name__ == "__main__":
    main()
