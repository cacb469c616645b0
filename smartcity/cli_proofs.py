"""`smartcity anchor` and `smartcity verify-proof`: notarise files, check any proof bundle offline.

verify-proof says what a bundle proves in one sentence (smartcity.proofs.explain: what, at which
block, signed by whom); `--details` folds out the particulars (block hash, roots, the full
value) and `--json` prints all of it for programs. Everything printed from a bundle is escaped,
so a label or key can never pass for another or hide characters from the reader.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import click

from chain import light, merkle
from chain.client import ChainClient, Identity
from chain.errors import ChainError
from chain.genesis import load_genesis
from chain.light import verify_bundle
from chain.strict_json import parse_bundle
from chain.tx import sign_tx
from smartcity.cli_common import HOME_OPTION, fail
from smartcity.proofs import Explained, explain


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@HOME_OPTION
@click.option("--as", "org", required=True, help="Organisation that signs the anchor.")
@click.option(
    "--label",
    default="notarised files",
    show_default=True,
    help="Label stored on the chain (never put personal data here).",
)
@click.option(
    "--proof-out",
    type=click.Path(path_type=Path),
    default=None,
    help="Bundle file (one FILE) or folder (several); default FILE.proof.json beside each.",
)
@click.option("--node", "node_url", default=None, help="Node API URL (default: the suite's).")
def anchor(
    files: tuple[Path, ...],
    home: Path,
    org: str,
    label: str,
    proof_out: Path | None,
    node_url: str | None,
) -> None:
    """Anchor files' SHA-256 hashes on the chain and save each file's proof bundle."""
    from chain.home import SuiteHome  # here, not at the top: it loads SQLAlchemy

    suite = SuiteHome(home)
    try:
        key, genesis = suite.org_key(org), suite.genesis()
        url = node_url or suite.api_url()
    except ChainError as exc:
        fail(str(exc))
    records = []
    for path in files:
        records.append(file_hash(path))
        click.echo(f"hashed {path} sha256:{records[-1].hex()}", err=True)
    root = merkle.root(records).hex()
    with ChainClient(url, identity=Identity(org, key)) as client:
        try:
            height = int(client.status()["height"])
            tx = sign_tx(
                key,
                chain_id=genesis.chain_id,
                contract="anchors",
                method="anchor",
                args={"root": root, "count": len(records), "label": label},
                expiry_height=height + 100,
            )
            click.echo(
                f"submitting anchor of {len(records)} record(s), root {root[:16]}…", err=True
            )
            receipt = client.submit_and_wait(tx)
            tx_hash = tx.hash
            if receipt["status"] != "ok":
                if receipt["code"] != "already_anchored":
                    fail(f"anchor failed: {receipt['code']}: {receipt['error']}")
                tx_hash = client.state("anchors", f"root:{org}:{root}")
                click.echo(
                    f"these files were already anchored by {tx_hash}; using that anchor", err=True
                )
            bundle = client.proof(tx_hash)
        except ChainError as exc:
            fail(str(exc))
    leaves = [merkle.leaf_hash(r) for r in records]
    for index, path in enumerate(files):
        record = {
            "hash": records[index].hex(),
            "index": index,
            "size": len(records),
            "path": [p.hex() for p in merkle.audit_path(leaves, index)],
        }
        out = _bundle_path(path, proof_out, len(files))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**bundle, "kind": "record", "record": record}, indent=2) + "\n")
        proven = verify_bundle({**bundle, "kind": "record", "record": record}, genesis)
        click.echo(f"{path}: anchored in block {proven.height}; proof {out}")


@click.command("verify-proof")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--genesis",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The chain's genesis.json: the validator set the history starts from.",
)
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also check the proven record is this file's SHA-256.",
)
@click.option(
    "--trust",
    default=None,
    metavar="HEIGHT:HASH",
    help="A recent header you trust (e.g. an observer's /v1/status height and latest_hash):"
    " the bundle's history must pass through it (docs/security.md).",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The trusted block as GET /v1/blocks/{HEIGHT} answers it, when the bundle holds no"
    " header at that height.",
)
@click.option(
    "--trusting-period",
    "trusting_period_h",
    type=click.IntRange(1, 24 * 365),
    default=light.DEFAULT_TRUSTING_PERIOD_MS // 3_600_000,
    show_default=True,
    help="Hours a trusted header stays trusted.",
)
@click.option(
    "--details",
    is_flag=True,
    help="Also list the particulars: block hash, roots, signers, the full proven value.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was proven as JSON.")
def verify_proof(
    bundle: Path,
    genesis: Path,
    file_: Path | None,
    trust: str | None,
    checkpoint: Path | None,
    trusting_period_h: int,
    details: bool,
    as_json: bool,
) -> None:
    """Verify a proof bundle offline; exit 0 and say what it proves, or exit 1 and say why not."""
    try:
        trusted = load_genesis(genesis)
    except ChainError as exc:
        fail(printable(str(exc)), 2)
    anchor = _trust_anchor(trust, checkpoint, trusting_period_h)
    try:
        document = parse_bundle(bundle.read_bytes())
    except (OSError, ChainError) as exc:
        fail(printable(f"INVALID: {bundle} is not a JSON proof bundle: {exc}"))
    try:
        proven = verify_bundle(document, trusted, anchor)
    except ChainError as exc:
        fail(printable(f"INVALID: {exc}"))
    told = explain(document, proven, trusted)
    lines = [f"VALID: {told.sentence}"]
    if anchor is not None:
        pinned = f"{anchor.height} ({anchor.hash[:12]}…)"
        lines.append(f"Its history passes through the block you trust, {pinned}.")
    if file_ is not None:
        digest = file_hash(file_).hex()
        # Verify the file is the proven record
        if proven.facts.get("record") != digest:
            fail(
                f"INVALID: {file_} has sha256 {digest},"
                f" the bundle proves {light.shown(proven.facts.get('record'))}"
            )
        lines.append(f"The file {file_} is that record (sha256 {digest}).")
    if as_json:
        click.echo(_as_json(proven, anchor, told))
        return
    for line in lines:
        click.echo(printable(line))
    if details or told.value_below:
        rows = told.details if details else [d for d in told.details if d[0] == "value"]
        click.echo(_rows(rows))


def _as_json(proven: light.Proven, anchor: light.Trust | None, told: Explained) -> str:
    """What was proven, for programs: the verified facts, the sentence and the particulars."""
    document = {
        "valid": True,
        "kind": proven.kind,
        "height": proven.height,
        "block_hash": proven.block_hash,
        "trusted": None if anchor is None else f"{anchor.height}:{anchor.hash}",
        "sentence": told.sentence,
        "details": dict(told.details),
        "facts": proven.facts,
    }
    return json.dumps(document, indent=2, ensure_ascii=True)


def _rows(rows: list[tuple[str, str]]) -> str:
    """Particulars as an indented two-column list; a multi-line value stays in its column."""
    width = max(len(label) for label, _ in rows) + 2
    out = []
    for label, value in rows:
        first, *rest = value.splitlines() or [""]
        out.append(printable(f"  {label:<{width}}{first}"))
        out += [printable(f"  {'':<{width}}{line}") for line in rest]
    return "\n".join(out)


def _trust_anchor(
    trust: str | None, checkpoint: Path | None, trusting_period_h: int
) -> light.Trust | None:
    """The --trust anchor, with the --checkpoint block's header and certificate if given."""
    if trust is None:
        if checkpoint is not None:
            fail(
                "--checkpoint needs --trust HEIGHT:HASH (the checkpoint's hash is what pins it)", 2
            )
        return None
    try:
        height, digest = light.parse_trust(trust)
    except ValueError as exc:
        fail(str(exc), 2)
    header = certificate = None
    if checkpoint is not None:
        try:
            block: Any = parse_bundle(checkpoint.read_bytes())
            header, certificate = block["header"], block["certificate"]
        except (OSError, ChainError, KeyError, TypeError) as exc:
            fail(printable(f"{checkpoint} is not a block (GET /v1/blocks/{{height}}): {exc}"), 2)
    return light.Trust(
        height=height,
        hash=digest,
        now_ms=int(time.time() * 1000),
        trusting_period_ms=trusting_period_h * 3_600_000,
        header=header,
        certificate=certificate,
    )


def printable(text: str) -> str:
    """Escape what a terminal would hide or garble (controls, zero-width and bidi characters)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def file_hash(path: Path) -> bytes:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _bundle_path(path: Path, proof_out: Path | None, count: int) -> Path:
    if proof_out is None:
        return path.with_name(path.name + ".proof.json")
    return proof_out if count == 1 else proof_out / (path.name + ".proof.json")
