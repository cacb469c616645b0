"""What a verified proof bundle proves, told in one sentence, with the particulars behind it.

`chain.light.verify_bundle` checks a bundle and says what it proved in the chain's terms
(`namespace/key = <canonical JSON>`). People reading the dashboard or a terminal want a sentence:
what was proven, at which block, signed by whom. `explain` builds that sentence from the
verified facts and the bundle's certificate, and lists the particulars (block hash, roots,
the full value) for a fold-out. It never re-verifies: call it only with what verify_bundle
accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chain.genesis import Genesis
from chain.light import Proven

SHORT = 12
VALUE_BELOW = "holds the value shown below"


@dataclass(frozen=True)
class Explained:
    """A proof in words: the sentence, and (label, value) particulars to fold out."""

    sentence: str
    details: list[tuple[str, str]]
    value_below: bool = False  # the sentence refers to the value in the particulars

    def as_json(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "details": [list(d) for d in self.details]}


def explain(bundle: dict[str, Any], proven: Proven, genesis: Genesis) -> Explained:
    """The sentence and particulars of a bundle that `verify_bundle` accepted as `proven`."""
    what = _what(bundle, proven, genesis)
    names, total = _signers(bundle, genesis)
    when = _when(bundle["header"]["time_ms"])
    where = (
        f"in the state after block {proven.height}"
        if proven.kind == "state"
        else f"in block {proven.height}"
    )
    sentence = (
        f"{what} {where} of chain {genesis.chain_id}, committed {when} and signed by"
        f" {len(names)} of {total} validators ({', '.join(names)})."
    )
    return Explained(sentence, _details(bundle, proven, names, when), what.endswith(VALUE_BELOW))


def _what(bundle: dict[str, Any], proven: Proven, genesis: Genesis) -> str:
    facts = proven.facts
    if proven.kind == "record":
        return (
            f"Record sha256 {_short(facts['record'])} is number {bundle['record']['index'] + 1}"
            f" of {facts['count']} in the batch {facts['label']!r} anchored by"
            f" {_org(bundle['tx']['sender'], genesis)}"
        )
    if proven.kind == "tx":
        return (
            f"Transaction {_short(facts['tx'])} ({facts['contract']}.{facts['method']},"
            f" {facts['status']}) sent by {_org(facts['sender'], genesis)} is"
        )
    return _state_fact(facts["namespace"], facts["key"], facts["value"], facts["present"])


def _state_fact(namespace: str, key: str, value: Any, present: bool) -> str:
    kind, _, rest = key.partition(":")
    if not present:
        return f"There is no {namespace} entry {key!r}"
    if (namespace, kind) == ("credit", "rating") and isinstance(value, dict):
        return (
            f"The credit rating of SME {rest} (grade {value.get('grade')}, rating"
            f" {value.get('seq')}, model {_short(str(value.get('model', '')))}) is recorded"
        )
    if (namespace, kind) == ("anchors", "batch") and isinstance(value, dict):
        return (
            f"The anchor batch {value.get('label')!r} of {value.get('count')} records by"
            f" {value.get('org')} (root {_short(str(value.get('root', '')))}) is recorded"
        )
    if (namespace, kind) == ("identity", "cred") and isinstance(value, dict):
        return (
            f"The {value.get('type')} credential {_short(rest)} issued by {value.get('org')}"
            " is anchored"
        )
    if (namespace, kind) == ("governance", "proposal") and isinstance(value, dict):
        return (
            f"Governance proposal {_short(rest)} ({value.get('action')},"
            f" {value.get('status')}) is recorded"
        )
    if (namespace, kind) == ("membership", "org") and isinstance(value, dict):
        roles = ", ".join(value.get("roles") or []) or "no roles"
        return (
            f"Organisation {rest} ({value.get('name')}; {roles}; {value.get('status')})"
            " is registered"
        )
    if (namespace, kind) == ("roadhealth", "device") and isinstance(value, dict):
        return f"Road sensor {rest} ({value.get('status')}) is registered"
    return f"The {namespace} entry {key!r} {VALUE_BELOW}"


def _signers(bundle: dict[str, Any], genesis: Genesis) -> tuple[list[str], int]:
    """Names of the validators whose precommits certify the block, and the set's size."""
    named = {v.pub_key: v.name for v in genesis.validators}
    members = len(genesis.validators)
    for step in bundle.get("validator_transitions") or []:
        validators = step.get("validators") or []
        members = len(validators)
        for v in validators:
            named.setdefault(v["pub_key"], str(v.get("name") or _short(v["pub_key"])))
    keys = [s["validator"] for s in bundle["certificate"]["signatures"]]
    return sorted((named.get(k, _short(k)) for k in keys), key=_natural), members


def _details(
    bundle: dict[str, Any], proven: Proven, signers: list[str], when: str
) -> list[tuple[str, str]]:
    header = bundle["header"]
    rows = [
        ("block", str(proven.height)),
        ("block hash", proven.block_hash),
        ("committed", when),
        ("signed by", ", ".join(signers)),
        ("round", str(bundle["certificate"]["round"])),
    ]
    if proven.kind == "state":
        rows += [
            ("state root", header["state_root"]),
            ("entry", f"{proven.facts['namespace']}/{proven.facts['key']}"),
            ("value", json.dumps(proven.facts["value"], indent=2, sort_keys=True)),
        ]
    else:
        rows += [("transaction", proven.facts["tx"]), ("transactions root", header["txs_root"])]
    if proven.kind == "record":
        rows += [("record", proven.facts["record"]), ("batch root", proven.facts["batch_root"])]
    changes = len(bundle.get("validator_transitions") or [])
    rows.append(("validator-set changes since genesis", str(changes)))
    return rows


def _org(pub_key: str, genesis: Genesis) -> str:
    for org in genesis.organisations:
        if pub_key in org.keys:
            return org.id
    return f"key {_short(pub_key)}"


def _when(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%d %b %Y %H:%M:%S UTC")


def _short(text: str) -> str:
    return text[:SHORT] + "…" if len(text) > SHORT else text


def _natural(name: str) -> tuple[str, int]:
    """validator-2 before validator-10."""
    stem, _, number = name.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (name, -1)
