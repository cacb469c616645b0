"""The SM suite's worked example of docs/protocol.md (section 15.1), recomputed so it cannot drift.

The block after `<!-- sm-example:transaction -->` must equal what the chain's code makes from the
fixed seed, with the doc's own signature (SM2 signatures are randomised: the doc holds one). A
verifier written from the doc alone (SM3 from `cryptography`, the curve's affine formulas, no
`chain` import) must accept that signature and recompute Z, e and the hashes.

After a deliberate format change, write a fresh block with

    .venv/bin/python tests/chain/test_protocol_sm_example.py --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from chain.encoding import canonical, from_b64url
from chain.suites import suite_for
from chain.suites.sm2_curve import N, z_value
from chain.tx import TX_DOMAIN, sign_tx, signing_bytes

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
MARKER = re.compile(r"(<!-- sm-example:transaction -->\n```text\n)(.*?)(\n```)", re.DOTALL)
SEED = bytes([0x01]) * 32
CHAIN_ID = "example-sm-city"
ARGS = {"root": "ab" * 32, "count": 1, "label": "bridge 7"}
STATE_KEY = ("membership", "org:city-works")

# GB/T 32918.5: the recommended curve, written out here from the standard
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)


def build(signature: bytes) -> str:
    """The doc's block, from the chain's code, with `signature` as the transaction's."""
    sm = suite_for("sm2-sm3")
    key = sm.key_from_seed(SEED)
    public = bytes.fromhex(key.public_hex)
    point = (int.from_bytes(public[1:33], "big"), int.from_bytes(public[33:], "big"))
    body = {
        "chain_id": CHAIN_ID,
        "sender": key.public_hex,
        "contract": "anchors",
        "method": "anchor",
        "args": ARGS,
        "nonce": 7,
        "expiry_height": 100,
    }
    message = signing_bytes(body)
    z = z_value(point)
    encoded = canonical({**body, "sig": signature.hex()})
    state_path = sm.hash(STATE_KEY[0].encode() + b"\x00" + STATE_KEY[1].encode())
    lines = [
        "seed        " + SEED.hex(),
        "d           1 + (seed mod (n - 2)) = " + from_b64url(key.to_jwk()["d"]).hex(),
        "public key  04 || X || Y = " + key.public_hex,
        "Z           SM3(0080 || 1234567812345678 || a || b || xG || yG || xA || yA)",
        "            = " + z.hex(),
        "body        " + canonical(body).decode(),
        f'message     "smartcity/tx/v1\\n" || body ({len(message)} bytes)',
        "e           SM3(Z || message) = " + sm.hash(z + message).hex(),
        "signature   r = " + signature[:32].hex(),
        "            s = " + signature[32:].hex(),
        "tx          " + encoded.decode(),
        "tx id       SM3(tx) = " + sm.hash(encoded).hex(),
        "leaf        SM3(00 || tx) = " + sm.hash(b"\x00" + encoded).hex(),
        "            (a block of this one transaction has it as txs_root)",
        f"state path  SM3({STATE_KEY[0]} || 00 || {STATE_KEY[1]}) = " + state_path.hex(),
    ]
    return "\n".join(lines)


def doc_block() -> str:
    found = MARKER.search(DOC.read_text(encoding="utf-8"))
    assert found, "docs/protocol.md has no sm-example:transaction block"
    return found.group(2)


def doc_signature(block: str) -> bytes:
    r = re.search(r"signature   r = ([0-9a-f]{64})", block)
    s = re.search(r"            s = ([0-9a-f]{64})", block)
    assert r and s, "the example block has no signature"
    return bytes.fromhex(r.group(1) + s.group(1))


# -- a verifier from the doc alone -----------------------------------------------------------------


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def add(p: tuple[int, int] | None, q: tuple[int, int] | None) -> tuple[int, int] | None:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % P == 0:
        return None
    if p == q:
        slope = (3 * p[0] * p[0] + A) * pow(2 * p[1], -1, P) % P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], -1, P) % P
    x = (slope * slope - p[0] - q[0]) % P
    return x, (slope * (p[0] - x) - p[1]) % P


def times(k: int, point: tuple[int, int]) -> tuple[int, int] | None:
    result, addend = None, point
    while k:
        if k & 1:
            result = add(result, addend)
        addend = add(addend, addend)  # type: ignore[assignment]
        k >>= 1
    return result


def verify_from_doc(block: str) -> None:
    """Recompute Z, e, the id and the leaf from the block's own values; check the signature."""
    fields = dict(
        re.findall(r"^(public key|body|tx) +(?:04 \|\| X \|\| Y = )?([0-9a-f]+|\{.+)$", block, re.M)
    )
    public = bytes.fromhex(fields["public key"])
    x, y = int.from_bytes(public[1:33], "big"), int.from_bytes(public[33:], "big")
    assert public[0] == 4 and (y * y - x * x * x - A * x - B) % P == 0
    seed = re.search(r"^seed +([0-9a-f]{64})$", block, re.M)
    d = re.search(r"^d .* = ([0-9a-f]{64})$", block, re.M)
    assert seed and d and int(d.group(1), 16) == 1 + int(seed.group(1), 16) % (N - 2)
    assert times(int(d.group(1), 16), G) == (x, y), "the public key is not d times G"
    z = sm3(
        (16 * 8).to_bytes(2, "big")
        + b"1234567812345678"
        + b"".join(v.to_bytes(32, "big") for v in (A, B, *G, x, y))
    )
    assert f"= {z.hex()}" in block
    message = b"smartcity/tx/v1\n" + fields["body"].encode()
    e = int.from_bytes(sm3(z + message), "big")
    assert f"SM3(Z || message) = {e:064x}" in block
    signature = doc_signature(block)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    # GB/T 32918.2 6.1: t = r + s, (x1, y1) = [s]G + [t]P_A, R = e + x1 must equal r
    point = add(times(s, G), times((r + s) % N, (x, y)))
    assert point is not None and (e + point[0]) % N == r, "the doc's signature does not verify"
    tx = fields["tx"].encode()
    assert f"SM3(tx) = {sm3(tx).hex()}" in block
    leaf = sm3(b"\x00" + tx).hex()
    assert f"SM3(00 || tx) = {leaf}" in block


def test_the_sm_example_in_the_doc_matches_the_code() -> None:
    block = doc_block()
    assert block == build(doc_signature(block)), "docs/protocol.md's SM example has drifted"


def test_the_sm_example_verifies_from_the_doc_alone_and_with_the_chain() -> None:
    block = doc_block()
    verify_from_doc(block)
    sm = suite_for("sm2-sm3")
    key = sm.key_from_seed(SEED)
    body = re.search(r"^body +(.+)$", block, re.M)
    assert body is not None
    assert sm.verify(key.public_hex, TX_DOMAIN + body.group(1).encode(), doc_signature(block))


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    key = suite_for("sm2-sm3").key_from_seed(SEED)
    fresh = sign_tx(
        key,
        chain_id=CHAIN_ID,
        contract="anchors",
        method="anchor",
        args=ARGS,
        expiry_height=100,
        nonce=7,
    )
    text = DOC.read_text(encoding="utf-8")
    block = build(bytes.fromhex(fresh.sig))
    DOC.write_text(MARKER.sub(lambda m: m.group(1) + block + m.group(3), text), encoding="utf-8")
