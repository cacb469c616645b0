"""The worked example of docs/protocol.md, recomputed from fixed seeds so the doc cannot drift.

Every fenced block in the doc preceded by `<!-- example:NAME -->` must equal the artefact NAME
built here from the real chain code. A small verifier written from the doc alone (hashlib,
rfc8785 and an Ed25519 primitive, no `chain` import) must accept the example bundles, and the
chain's own light client must too.

After a deliberate change to the wire format, regenerate the doc's blocks with

    .venv/bin/python tests/chain/test_protocol_example.py --write
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from chain import merkle
from chain.auth import AuthError, verify_token
from chain.block import Certificate, sign_precommit, vote_bytes
from chain.crypto import SigningKey
from chain.db import make_engine
from chain.genesis import initial_state, parse_genesis
from chain.ledger import Ledger
from chain.light import verify_bundle
from chain.store import BlockStore
from chain.tx import sign_tx

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MARKER = re.compile(r"<!-- example:([a-z0-9_]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)

CHAIN_ID = "example-city"
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_TIME_MS = 1_767_225_601_000
RECORD_FILES = [b"inspection report 1\n", b"inspection report 2\n", b"inspection report 3\n"]
RECORD_INDEX = 2
LABEL = "Brücke 7 inspections"
TOKEN_IAT = 1_767_225_600
TOKEN_JTI = "0f1e2d3c4b5a6978"


def seed(byte: int) -> bytes:
    return bytes([byte]) * 32


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@cache
def build_example() -> dict[str, str]:
    """Run the example through the real ledger; return each doc block's exact text."""
    validators = [SigningKey.from_seed(seed(i)) for i in (1, 2, 3, 4)]
    org = SigningKey.from_seed(seed(0x10))
    document = {
        "chain_id": CHAIN_ID,
        "genesis_time_ms": GENESIS_TIME_MS,
        "validators": [
            {"name": f"validator-{i}", "pub_key": v.public_hex} for i, v in enumerate(validators)
        ],
        "organisations": [
            {
                "id": "city-works",
                "name": "City Public Works",
                "roles": ["agency", "committee"],
                "keys": [org.public_hex],
            }
        ],
    }
    genesis = parse_genesis(document)
    ledger = Ledger(genesis, BlockStore(make_engine("sqlite:///:memory:")))

    records = [hashlib.sha256(f).digest() for f in RECORD_FILES]
    leaves = [merkle.leaf_hash(r) for r in records]
    root = merkle.root(records).hex()
    args = {"root": root, "count": len(records), "label": LABEL}
    anchor = sign_tx(
        org,
        chain_id=CHAIN_ID,
        contract="anchors",
        method="anchor",
        args=args,
        expiry_height=100,
        nonce=1,
    )
    again = sign_tx(
        org,
        chain_id=CHAIN_ID,
        contract="anchors",
        method="anchor",
        args={**args, "label": "again"},
        expiry_height=100,
        nonce=2,
    )
    for tx in (anchor, again):
        ledger.check_tx(tx)
    result = ledger.execute(
        [anchor, again], height=1, time_ms=BLOCK_TIME_MS, proposer=validators[0].public_hex
    )
    block_hash = result.header.hash
    signatures = [
        sign_precommit(v, chain_id=CHAIN_ID, height=1, round_=0, block_hash=block_hash)
        for v in validators[:3]
    ]
    ledger.commit(result, Certificate(1, 0, block_hash, signatures))  # type: ignore[arg-type]

    tx_bundle = ledger.tx_proof(anchor.hash)
    assert tx_bundle is not None
    record = {
        "hash": records[RECORD_INDEX].hex(),
        "index": RECORD_INDEX,
        "size": len(records),
        "path": [p.hex() for p in merkle.audit_path(leaves, RECORD_INDEX)],
    }
    record_bundle = {**tx_bundle, "kind": "record", "record": record}
    present = ledger.state_proof("anchors", f"root:city-works:{root}")
    absent = ledger.state_proof("anchors", "root:city-works:" + "00" * 32)

    genesis_state = [
        f"{ns}/{key} = {rfc8785.dumps(value).decode()}"
        for (ns, key), value in sorted(initial_state(genesis).items())
    ]
    vote: dict[str, Any] = {"chain_id": CHAIN_ID, "kind": "precommit", "height": 1, "round_": 0}
    return {
        "keys": "\n".join(
            [
                f"validator-{i}  seed {seed(i + 1).hex()}\n             pub  {v.public_hex}"
                for i, v in enumerate(validators)
            ]
            + [f"city-works   seed {seed(0x10).hex()}\n             pub  {org.public_hex}"]
        ),
        "genesis_input": _json(document),
        "genesis_normalised": _json(genesis.to_json()),
        "genesis_state": "\n".join(genesis_state),
        "genesis_hashes": (
            f"genesis hash     {genesis.hash}\nvalidators_hash  {genesis.validators_hash}"
        ),
        "records": "\n".join(
            f"record {i}  sha256 {r.hex()}\n          leaf   {leaf.hex()}"
            for i, (r, leaf) in enumerate(zip(records, leaves, strict=True))
        )
        + f"\nbatch root         {root}",
        "tx_signing_bytes": anchor.signed_bytes().decode(),
        "tx_signed": rfc8785.dumps(anchor.to_json()).decode(),
        "tx_hashes": f"anchor tx hash  {anchor.hash}\nsecond tx hash  {again.hash}",
        "vote_signing_bytes": vote_bytes(**vote, block_hash=block_hash).decode(),
        "header_hash": f"block 1 header hash  {block_hash}",
        "receipt_failed": _json(result.receipts[1].to_json()),
        "record_bundle": _json(record_bundle),
        "record_trace": "\n".join(trace_record(record_bundle)),
        "state_bundle": _json(present),
        "state_trace": "\n".join(trace_state(present)),
        "absent_state": _json({k: absent[k] for k in ("namespace", "key", "value", "state_proof")}),
        "absent_trace": "\n".join(trace_state(absent)),
        "org_jwk": json.dumps(org.to_jwk()),
        "bearer_token": bearer_token(org, "city-works"),
        "bearer_token_parts": "\n".join(
            base64.urlsafe_b64decode(part + "==").decode()
            for part in bearer_token(org, "city-works").split(".")[:2]
        ),
    }


def bearer_token(key: SigningKey, org: str) -> str:
    """A token built as the doc says (not with chain.auth.mint_token), with a fixed jti."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header: dict[str, Any] = {"alg": "EdDSA", "typ": "JWT", "kid": key.public_hex}
    claims: dict[str, Any] = {
        "iss": org,
        "sub": key.public_hex,
        "aud": "chain",
        "iat": TOKEN_IAT,
        "exp": TOKEN_IAT + 300,
        "jti": TOKEN_JTI,
    }
    signing_input = b64(rfc8785.dumps(header)) + "." + b64(rfc8785.dumps(claims))
    return signing_input + "." + b64(key.sign(signing_input.encode()))


# -- an independent verifier, written from docs/protocol.md alone ---------------------------------


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def unhex(value: Any, size: int) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{2 * size}}}", value):
        raise ValueError(f"not {size} bytes of lowercase hex: {value!r}")
    return bytes.fromhex(value)


def ed25519_ok(pub_hex: str, message: bytes, sig_hex: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(unhex(pub_hex, 32)).verify(unhex(sig_hex, 64), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def rfc9162_root(
    leaf_hash: bytes, index: int, size: int, path: list[bytes]
) -> tuple[bytes, list[str]]:
    """RFC 9162 section 2.1.3.2, with a trace of each step."""
    if not 0 <= index < size:
        raise ValueError("index outside the tree")
    fn, sn, r = index, size - 1, leaf_hash
    steps = []
    for p in path:
        if sn == 0:
            raise ValueError("path too long")
        if fn & 1 or fn == sn:
            r = H(b"\x01" + p + r)
            steps.append(f"fn={fn} sn={sn}: r = H(01 || p || r) = {r.hex()}")
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = H(b"\x01" + r + p)
            steps.append(f"fn={fn} sn={sn}: r = H(01 || r || p) = {r.hex()}")
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("path too short")
    return r, steps


def verify_header(bundle: dict[str, Any], genesis: dict[str, Any]) -> dict[str, Any]:
    header, cert = bundle["header"], bundle["certificate"]
    powers = {v["pub_key"]: v.get("power", 1) for v in genesis["validators"]}
    vset = sorted(
        ({"pub_key": k, "power": p} for k, p in powers.items()), key=lambda v: v["pub_key"]
    )
    assert bundle["version"] == 1
    assert bundle["chain_id"] == header["chain_id"] == genesis["chain_id"]
    assert header["validators_hash"] == H(rfc8785.dumps(vset)).hex()
    block_hash = H(rfc8785.dumps(header)).hex()
    assert cert["height"] == header["height"]
    assert cert["block_hash"] == block_hash
    message = b"smartcity/vote/v1\n" + rfc8785.dumps(
        {
            "chain_id": header["chain_id"],
            "type": "precommit",
            "height": cert["height"],
            "round": cert["round"],
            "block_hash": block_hash,
        }
    )
    signers: set[str] = set()
    for s in cert["signatures"]:
        assert s["validator"] in powers
        assert s["validator"] not in signers
        assert ed25519_ok(s["validator"], message, s["sig"])
        signers.add(s["validator"])
    assert sum(powers[v] for v in signers) >= 2 * sum(powers.values()) // 3 + 1
    return dict(header)


def check_path(data: bytes, proof: dict[str, Any], root_hex: str, size: int) -> list[str]:
    assert proof["size"] == size
    leaf = H(b"\x00" + data)
    path = [unhex(p, 32) for p in proof["path"]]
    root, steps = rfc9162_root(leaf, proof["index"], size, path)
    assert root == unhex(root_hex, 32), "Merkle root mismatch"
    return [f"leaf = H(00 || data) = {leaf.hex()}", *steps, f"root = {root.hex()}"]


def trace_record(bundle: dict[str, Any]) -> list[str]:
    tx, receipt, record = bundle["tx"], bundle["receipt"], bundle["record"]
    header = bundle["header"]
    lines = ["tx leaf (txs_root, tx_count):"]
    lines += check_path(
        rfc8785.dumps(tx), bundle["tx_proof"], header["txs_root"], header["tx_count"]
    )
    lines += ["receipt leaf (receipts_root, tx_count):"]
    lines += check_path(
        rfc8785.dumps(receipt), bundle["receipt_proof"], header["receipts_root"], header["tx_count"]
    )
    lines += ["record leaf (args.root, args.count):"]
    lines += check_path(unhex(record["hash"], 32), record, tx["args"]["root"], tx["args"]["count"])
    return lines


def trace_state(bundle: dict[str, Any]) -> list[str]:
    kh = H(bundle["namespace"].encode() + b"\x00" + bundle["key"].encode())
    proof = bundle["state_proof"]
    siblings = [unhex(s, 32) for s in proof["siblings"]]
    assert len(siblings) <= 256
    leaf = proof["leaf"]
    lines = [f"key_hash = H(namespace || 00 || key) = {kh.hex()}"]
    bits = "".join(str((kh[d >> 3] >> (7 - (d & 7))) & 1) for d in range(len(siblings)))
    lines.append(f"first {len(siblings)} bits of key_hash (depth 0 first) = {bits or '(none)'}")
    if leaf is None:
        node = bytes(32)
        lines.append("terminal = empty = 00…00")
    else:
        lk, lv = unhex(leaf["key_hash"], 32), unhex(leaf["value_hash"], 32)
        lbits = "".join(str((lk[d >> 3] >> (7 - (d & 7))) & 1) for d in range(len(siblings)))
        assert lbits == bits, "terminal leaf off the key's path"
        node = H(b"\x00" + lk + lv)
        lines.append(f"terminal = H(00 || leaf.key_hash || leaf.value_hash) = {node.hex()}")
    for d in range(len(siblings) - 1, -1, -1):
        if bits[d] == "1":
            node = H(b"\x01" + siblings[d] + node)
            lines.append(f"depth {d} bit 1: node = H(01 || sibling || node) = {node.hex()}")
        else:
            node = H(b"\x01" + node + siblings[d])
            lines.append(f"depth {d} bit 0: node = H(01 || node || sibling) = {node.hex()}")
    assert node.hex() == bundle["header"]["state_root"], "state root mismatch"
    present = leaf is not None and leaf["key_hash"] == kh.hex()
    if bundle["value"] is None:
        assert not present
        lines.append("leaf is absent or another key's: the key is ABSENT")
    else:
        assert present
        assert leaf["value_hash"] == H(rfc8785.dumps(bundle["value"])).hex()
        lines.append(f"value_hash = H(canonical(value)) = {leaf['value_hash']}: PRESENT")
    return lines


# -- tests ----------------------------------------------------------------------------------------


def doc_blocks() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for name, body in MARKER.findall(text):
        assert name not in found, f"example block {name} appears twice in the doc"
        found[name] = body
    return found


def test_every_example_block_in_the_doc_matches_the_code() -> None:
    expected, found = build_example(), doc_blocks()
    assert sorted(found) == sorted(expected), "the doc's example blocks are not the expected set"
    for name, body in expected.items():
        assert found[name] == body, f"docs/protocol.md example block {name!r} has drifted"


def test_the_independent_verifier_accepts_the_example_and_rejects_tampering() -> None:
    example = build_example()
    genesis = json.loads(example["genesis_input"])
    bundles = [json.loads(example["record_bundle"]), json.loads(example["state_bundle"])]
    for bundle in bundles:
        verify_header(bundle, genesis)
    # Block 1's prev_hash is the hash of the genesis with its defaults filled in
    normalised = json.loads(example["genesis_normalised"])
    assert {k: v for k, v in normalised.items() if k in genesis} != genesis  # powers were added
    genesis_hash = H(rfc8785.dumps(normalised)).hex()
    assert bundles[0]["header"]["prev_hash"] == genesis_hash
    assert f"genesis hash     {genesis_hash}" in example["genesis_hashes"]
    trace_record(bundles[0])
    trace_state(bundles[1])
    record = bundles[0]["record"]
    assert record["hash"] == hashlib.sha256(RECORD_FILES[RECORD_INDEX]).hexdigest()
    tx = bundles[0]["tx"]
    body = {k: v for k, v in tx.items() if k != "sig"}
    assert ed25519_ok(tx["sender"], b"smartcity/tx/v1\n" + rfc8785.dumps(body), tx["sig"])
    assert bundles[0]["receipt"]["tx"] == H(rfc8785.dumps(tx)).hex()
    # Each record of the batch, not only the example's, verifies through RFC 9162
    leaves = [H(b"\x00" + hashlib.sha256(f).digest()) for f in RECORD_FILES]
    for i in range(len(leaves)):
        path = merkle.audit_path(leaves, i)
        assert rfc9162_root(leaves[i], i, len(leaves), path)[0].hex() == tx["args"]["root"]
    tampered = copy.deepcopy(bundles[0])
    tampered["record"]["index"] = 1
    with pytest.raises((AssertionError, ValueError)):
        trace_record(tampered)
    tampered = copy.deepcopy(bundles[1])
    tampered["value"] = "00" * 32
    with pytest.raises(AssertionError):
        trace_state(tampered)


def test_the_chain_light_client_accepts_the_example_bundles() -> None:
    example = build_example()
    genesis = parse_genesis(json.loads(example["genesis_input"]))
    proven = verify_bundle(json.loads(example["record_bundle"]), genesis)
    assert proven.facts["record"] == hashlib.sha256(RECORD_FILES[RECORD_INDEX]).hexdigest()
    assert verify_bundle(json.loads(example["state_bundle"]), genesis).facts["present"]
    absent = json.loads(example["state_bundle"]) | json.loads(example["absent_state"])
    assert not verify_bundle(absent, genesis).facts["present"]


def test_the_example_bearer_token_is_accepted_and_checked() -> None:
    token = build_example()["bearer_token"]
    kid = SigningKey.from_seed(seed(0x10)).public_hex

    def resolve(key: str) -> tuple[str, frozenset[str]] | None:
        return ("city-works", frozenset({"agency", "committee"})) if key == kid else None

    caller = verify_token(token, audience="chain", resolve=resolve, now=TOKEN_IAT + 100)
    assert (caller.org, caller.key) == ("city-works", kid)
    late = TOKEN_IAT + 300 + 31  # exp plus the 30 s leeway has passed
    with pytest.raises(AuthError, match="expired"):
        verify_token(token, audience="chain", resolve=resolve, now=late)
    with pytest.raises(AuthError, match="audience"):
        verify_token(token, audience="credit", resolve=resolve, now=TOKEN_IAT)
    with pytest.raises(AuthError, match="not an active key"):
        verify_token(token, audience="chain", resolve=lambda _: None, now=TOKEN_IAT)


def _write_doc() -> None:
    expected = build_example()
    text = DOC.read_text(encoding="utf-8")

    def replace(match: re.Match[str]) -> str:
        fence = match.group(0).split("\n", 2)[1]
        return f"<!-- example:{match.group(1)} -->\n{fence}\n{expected[match.group(1)]}\n```"

    DOC.write_text(MARKER.sub(replace, text), encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        _write_doc()
    else:
        for name, body in build_example().items():
            print(f"<!-- example:{name} -->\n```\n{body}\n```\n")
