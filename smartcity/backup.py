"""`smartcity backup` / `smartcity restore`: a node's data as one verifiable, portable file.

The backup is a ZIP archive (mode 0600) holding:

    manifest.json               format, chain id, genesis hash, height, tip block hash and state
                                root, and for every entry its SHA-256 (and row count for tables)
    tables/<table>.jsonl        every row of the node's tables, one JSON object per line (the
                                state as chain_state's rows: every key's current value)
    home/node.json              the node's settings; home/genesis.json its genesis
    home/node_key.jwk           the node's private key, only with --with-key

Rows are read from one consistent snapshot while the node runs: PostgreSQL in a REPEATABLE READ
transaction, SQLite through its online backup API. The format does not depend on the database,
so a SQLite node can be restored into PostgreSQL and back.

Restore checks everything before it writes anything: the manifest's hashes and row counts, the
genesis hash, every header's hash, its link to the previous header and its transactions' and
receipts' Merkle roots, the tip's certificate, every state value against its stored hash, and the
state root recomputed from the state rows against the tip header. It refuses a non-empty home or
database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from chain import merkle
from chain.block import Certificate, Header, Receipt
from chain.db import make_engine, sqlite_url
from chain.encoding import canonical
from chain.errors import EncodingError
from chain.genesis import parse_genesis
from chain.home import NodeHome, NodeSettings
from chain.journal import MEMPOOL_FOLDER
from chain.state import key_hash, value_hash
from chain.store import BlockStore, blocks, evidence_rows, meta, pending, txs, validator_sets
from chain.store_state import state_rows
from chain.suites.hashing import ChainTrees, trees_for
from chain.tx import tx_from_json
from smartcity.backup_rows import dump_pending, dump_state, dump_table, read_journal
from smartcity.errors import SmartcityError

FORMAT = "smartcity-node-backup"
VERSION = 1
MANIFEST = "manifest.json"
TABLES: tuple[Table, ...] = (meta, blocks, txs, state_rows, validator_sets, evidence_rows, pending)
KEY_FILE = "node_key.jwk"


class BackupError(SmartcityError):
    """A backup cannot be made, or a backup file cannot be trusted or restored."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    manifest: dict[str, Any]


# -- backup --------------------------------------------------------------------------------


def create_backup(
    home: NodeHome, out: Path, *, database_url: str | None = None, with_key: bool = False
) -> BackupInfo:
    """Write a consistent snapshot of the node at `home` to `out` (mode 0600, never overwrites)."""
    if out.exists():
        raise BackupError(f"{out} already exists: choose a new file name")
    url = database_url or home.database_url
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            manifest = _write_snapshot(zf, url, home.path / MEMPOOL_FOLDER)
            genesis = home.genesis().hash
            if manifest["genesis_hash"] != genesis:
                raise BackupError(
                    f"the database holds another chain (genesis"
                    f" {str(manifest['genesis_hash'])[:16]}…), not this node's ({genesis[:16]}…)"
                )
            _write_home(zf, home, manifest, with_key=with_key)
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(partial, out)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return BackupInfo(out, manifest)


def _write_snapshot(zf: zipfile.ZipFile, url: str, journal: Path) -> dict[str, Any]:
    # The journal first, then the database: a transaction acknowledged before the backup
    # starts is in what is read of the journal, or left it because its block was stored, and
    # then is in the snapshot taken after. Read the other way round, a block stored between
    # the two took it out of both
    journaled = read_journal(journal)
    with _snapshot(url) as conn:
        entries: dict[str, Any] = {}
        for table in TABLES:
            name = f"tables/{table.name}.jsonl"
            with zf.open(name, "w") as handle:
                if table is pending:
                    count, digest = dump_pending(conn, journaled, handle)
                elif table is state_rows:
                    count, digest = dump_state(conn, handle)
                else:
                    count, digest = dump_table(conn, table, handle)
            entries[name] = {"rows": count, "sha256": digest}
        meta_rows = {r.name: r.value for r in conn.execute(select(meta.c.name, meta.c.value))}
        height = int(conn.execute(select(func.coalesce(func.max(blocks.c.height), 0))).scalar_one())
        tip = conn.execute(
            select(blocks.c.hash, blocks.c.header).where(blocks.c.height == height)
        ).first()
    if "genesis_hash" not in meta_rows:
        raise BackupError(f"{_safe_url(url)} holds no chain (no genesis recorded)")
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_at_ms": int(time.time() * 1000),
        "chain_id": meta_rows.get("chain_id"),
        "genesis_hash": meta_rows["genesis_hash"],
        "height": height,
        "block_hash": tip.hash if tip else None,
        "state_root": json.loads(tip.header)["state_root"] if tip else None,
        "entries": entries,
    }


def _write_home(
    zf: zipfile.ZipFile, home: NodeHome, manifest: dict[str, Any], *, with_key: bool
) -> None:
    files = {
        "home/node.json": (home.path / "node.json").read_bytes(),
        "home/genesis.json": home.genesis_path.read_bytes(),
    }
    if with_key:
        files[f"home/{KEY_FILE}"] = (home.path / KEY_FILE).read_bytes()
    for name, body in files.items():
        zf.writestr(name, body)
        manifest["entries"][name] = {"sha256": hashlib.sha256(body).hexdigest()}
    manifest["node"] = home.settings.name
    manifest["role"] = home.settings.role
    manifest["with_key"] = with_key


@contextlib.contextmanager
def _snapshot(url: str) -> Iterator[Connection]:
    """A connection that sees one consistent state of the database while the node writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "snapshot.db"
            _sqlite_online_copy(str(parsed.database), copy)
            engine = make_engine(sqlite_url(copy))
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                engine.dispose()
        return
    engine = make_engine(url)
    try:
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            yield conn
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read {_safe_url(url)}: {exc.__class__.__name__}") from exc
    finally:
        engine.dispose()


def _sqlite_online_copy(source: str, target: Path) -> None:
    if not Path(source).is_file():
        raise BackupError(f"no node database at {source}")
    try:
        # The online backup API copies a consistent state while the node keeps writing (WAL)
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy {source}: {exc}") from exc


# -- restore -------------------------------------------------------------------------------


def restore_backup(
    backup: Path,
    home_path: Path,
    *,
    database_url: str | None = None,
    record_database_url: bool = False,
    key_file: Path | None = None,
) -> dict[str, Any]:
    """Verify `backup`, then create the node home `home_path` and fill its database.

    The database is `database_url` (default: SQLite in the new home); with
    `record_database_url` the URL is also written to the home's node.json.
    """
    _refuse_non_empty_home(home_path)
    with _open_backup(backup) as zf:
        manifest = verify_backup(zf)
        url = database_url or sqlite_url(home_path / "chain.db")
        _refuse_non_empty_database(url)
        recorded = database_url if record_database_url else None
        _write_home_files(zf, home_path, manifest, database_url=recorded, key_file=key_file)
        _load_tables(zf, url)
    return manifest


@contextlib.contextmanager
def _open_backup(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise BackupError(f"{path} is corrupt: {bad} fails its CRC check")
            yield zf
    except (zipfile.BadZipFile, EOFError) as exc:
        raise BackupError(
            f"{path} is not a complete backup (truncated or not a ZIP): {exc}"
        ) from exc
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from exc


def verify_backup(zf: zipfile.ZipFile) -> dict[str, Any]:
    """Check the manifest, every entry's hash, the genesis and the chain; returns the manifest."""
    manifest = _read_manifest(zf)
    _verify_entries(zf, manifest)
    genesis = parse_genesis(json.loads(zf.read("home/genesis.json")))
    # Verify the genesis file is the chain's genesis
    if genesis.hash != manifest["genesis_hash"]:
        raise BackupError(
            f"home/genesis.json has hash {genesis.hash[:16]}…, the chain's genesis is"
            f" {str(manifest['genesis_hash'])[:16]}…"
        )
    _verify_chain(zf, manifest, genesis.hash, trees_for(genesis.suite))
    return manifest


def _read_manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except KeyError as exc:
        raise BackupError("not a smartcity node backup: it has no manifest.json") from exc
    except ValueError as exc:
        raise BackupError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"not a smartcity node backup (format is not {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise BackupError(f"backup format version {manifest.get('version')} is not {VERSION}")
    return manifest


def _verify_entries(zf: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    entries: dict[str, Any] = manifest.get("entries") or {}
    present = set(zf.namelist()) - {MANIFEST}
    missing = sorted(set(entries) - present)
    if missing:
        raise BackupError(
            f"backup incomplete: {', '.join(missing)} listed in the manifest but absent"
        )
    extra = sorted(present - set(entries))
    if extra:
        raise BackupError(f"backup holds entries the manifest does not list: {', '.join(extra)}")
    for table in TABLES:
        if f"tables/{table.name}.jsonl" not in entries:
            raise BackupError(f"backup lacks table {table.name}")
    for name, expected in sorted(entries.items()):
        digest, lines = hashlib.sha256(), 0
        with zf.open(name) as handle:
            for line in handle:
                digest.update(line)
                lines += 1
        if digest.hexdigest() != expected.get("sha256"):
            raise BackupError(
                f"backup corrupt: {name} has sha256 {digest.hexdigest()[:16]}…,"
                f" the manifest says {str(expected.get('sha256'))[:16]}…"
            )
        if "rows" in expected and lines != expected["rows"]:
            raise BackupError(
                f"backup corrupt: {name} has {lines} rows, the manifest says {expected['rows']}"
            )


def _rows(zf: zipfile.ZipFile, table: Table) -> Iterator[dict[str, Any]]:
    with zf.open(f"tables/{table.name}.jsonl") as handle:
        for number, line in enumerate(handle, 1):
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise BackupError(f"{table.name} row {number} is not JSON: {exc}") from exc
            if not isinstance(row, dict) or set(row) != set(table.columns.keys()):
                raise BackupError(f"{table.name} row {number} does not have the table's columns")
            yield row


def _verify_chain(
    zf: zipfile.ZipFile, manifest: dict[str, Any], genesis_hash: str, trees: ChainTrees
) -> None:
    """The blocks and state, hashed under the chain's suite (`trees`, chain.suites.hashing)."""
    meta_rows = {r["name"]: r["value"] for r in _rows(zf, meta)}
    if meta_rows.get("genesis_hash") != genesis_hash:
        raise BackupError("the database's recorded genesis is not the backup's genesis")
    block_txs: dict[int, list[dict[str, Any]]] = {}
    for row in _rows(zf, txs):
        block_txs.setdefault(int(row["height"]), []).append(row)
    prev_hash, header = genesis_hash, None
    for expected, row in enumerate(_rows(zf, blocks), 1):
        header = _verify_block(row, expected, prev_hash, block_txs.get(expected, []), trees)
        prev_hash = header.hash
    height = header.height if header else 0
    if height != manifest.get("height") or (header and header.hash != manifest.get("block_hash")):
        raise BackupError(
            f"the blocks end at height {height}, the manifest says {manifest.get('height')}"
        )
    if set(block_txs) - set(range(1, height + 1)):
        raise BackupError("transactions recorded for blocks the backup does not hold")
    _verify_state(zf, header, trees)


def _verify_block(
    row: dict[str, Any],
    expected: int,
    prev_hash: str,
    tx_rows: list[dict[str, Any]],
    trees: ChainTrees,
) -> Header:
    try:
        header = Header.from_json(json.loads(row["header"]))
        certificate = Certificate.from_json(json.loads(row["certificate"]))
        ordered = sorted(tx_rows, key=lambda r: int(r["idx"]))
        tx_bytes = [tx_from_json(json.loads(r["body"])).encode() for r in ordered]
        receipt_bytes = [Receipt.from_json(json.loads(r["receipt"])).encode() for r in ordered]
    except (EncodingError, ValueError, TypeError, KeyError) as exc:
        raise BackupError(f"block {row.get('height')} cannot be decoded: {exc}") from exc
    # Verify heights run without gaps and each header links to the previous one
    if int(row["height"]) != expected or header.height != expected:
        raise BackupError(f"block {row['height']} found where block {expected} should be")
    if header.prev_hash != prev_hash:
        raise BackupError(
            f"block {expected} does not link to block {expected - 1}: the chain is broken"
        )
    if header.hash != row["hash"] or certificate.block_hash != header.hash:
        raise BackupError(f"block {expected}'s header does not hash to its recorded hash")
    # Verify the block's transactions and receipts are the ones its header commits to
    if (
        len(tx_bytes) != header.tx_count
        or merkle.root(tx_bytes, trees.hasher).hex() != header.txs_root
    ):
        raise BackupError(f"block {expected}'s transactions do not match its header")
    if merkle.root(receipt_bytes, trees.hasher).hex() != header.receipts_root:
        raise BackupError(f"block {expected}'s receipts do not match its header")
    return header


def _verify_state(zf: zipfile.ZipFile, tip: Header | None, trees: ChainTrees) -> None:
    entries, hasher = [], trees.hasher
    for row in _rows(zf, state_rows):
        value = json.loads(row["value"])
        # Verify each value is the one its hash (a leaf of the state tree) stands for
        if value_hash(value, hasher).hex() != row["value_hash"]:
            raise BackupError(f"state {row['namespace']}/{row['key']} does not match its hash")
        path = key_hash(row["namespace"], row["key"], hasher)
        entries.append((path, bytes.fromhex(row["value_hash"])))
    root = trees.Tree.from_entries(entries).root_hash.hex()
    if tip is not None and root != tip.state_root:
        raise BackupError(
            f"state root recomputed from the backup, {root[:16]}…, is not block {tip.height}'s"
            f" {tip.state_root[:16]}…"
        )


def _refuse_non_empty_home(home_path: Path) -> None:
    if home_path.exists() and (not home_path.is_dir() or any(home_path.iterdir())):
        found = (
            ", ".join(sorted(p.name for p in home_path.iterdir())[:5])
            if home_path.is_dir()
            else "a file"
        )
        raise BackupError(
            f"refusing to restore into {home_path}: it is not empty ({found}); use a new folder"
        )


def _refuse_non_empty_database(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            exists = engine.dialect.has_table(conn, blocks.name)
            held = exists and conn.execute(select(func.count()).select_from(meta)).scalar_one()
    except SQLAlchemyError as exc:
        raise BackupError(
            f"cannot open the target database {_safe_url(url)}: {exc.__class__.__name__}"
        ) from exc
    finally:
        engine.dispose()
    if held:
        raise BackupError(f"refusing to restore into {_safe_url(url)}: it already holds a chain")


def _write_home_files(
    zf: zipfile.ZipFile,
    home_path: Path,
    manifest: dict[str, Any],
    *,
    database_url: str | None,
    key_file: Path | None,
) -> None:
    home_path.mkdir(parents=True, exist_ok=True)
    (home_path / "genesis.json").write_bytes(zf.read("home/genesis.json"))
    settings = NodeSettings.model_validate_json(zf.read("home/node.json"))
    # The genesis now sits in the home; a database URL given to restore is the node's from now on
    settings = settings.model_copy(update={"genesis": "genesis.json", "database_url": database_url})
    (home_path / "node.json").write_text(
        settings.model_dump_json(indent=2, exclude_none=True) + "\n"
    )
    key_path = home_path / KEY_FILE
    body = zf.read(f"home/{KEY_FILE}") if manifest["with_key"] else None
    if key_file is not None:
        body = key_file.read_bytes()
    if body is not None:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)


def _load_tables(zf: zipfile.ZipFile, url: str) -> None:
    engine = make_engine(url)
    try:
        BlockStore(engine)  # creates the tables
        with engine.begin() as conn:
            for table in TABLES:
                batch: list[dict[str, Any]] = []
                for row in _rows(zf, table):
                    batch.append(row)
                    if len(batch) >= 1000:
                        conn.execute(insert(table), batch)
                        batch = []
                if batch:
                    conn.execute(insert(table), batch)
    except SQLAlchemyError as exc:
        raise BackupError(
            f"writing the restored data failed: {exc.__class__.__name__}: {exc}"
        ) from exc
    finally:
        engine.dispose()


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """A short fingerprint of a manifest, printed by the CLI so operators can compare backups."""
    return hashlib.sha256(canonical(manifest)).hexdigest()[:16]
