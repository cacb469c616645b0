"""`smartcity`: set up a chain, run nodes or the suite, anchor files, mint tokens, verify proofs."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from chain import light, merkle
from chain.auth import AUDIENCE_CHAIN, DEFAULT_TTL_S, MAX_TTL_S, AuthError, mint_token
from chain.client import ChainClient, Identity
from chain.db import database_url_from_env
from chain.errors import ChainError
from chain.genesis import load_genesis
from chain.home import SuiteHome, init_suite, load_node_home
from chain.light import verify_bundle
from chain.sim.world import BEHAVIOURS, FAULTS, Failure, Scenario, run_scenario
from chain.tx import sign_tx
from smartcity.registry import SERVICES

DATA = Path("data")
# What a token may be for: a node's API and each service the suite mounts (smartcity.registry)
AUDIENCES = (AUDIENCE_CHAIN, *(entry.name for entry in SERVICES))
HOME_OPTION = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATA,
    show_default=True,
    help="The suite folder made by `smartcity init` (or `smartcity up`).",
)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class LazyGroup(click.Group):
    """Imports a service's command group only when it is used, so `smartcity node` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_GROUPS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_GROUPS:
            module_name, _, attr = LAZY_GROUPS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SMARTCITY_CONFIG",
    default=None,
    help="Settings file (TOML); default DATA/smartcity.toml when present. See docs/operations.md.",
)
def main(verbose: bool, config: Path | None) -> None:
    """A city's Blockchain-based Service Network: ledger, identity, SME credit and road health."""
    from smartcity.logs import configure_logging

    if config is not None:
        os.environ["SMARTCITY_CONFIG"] = str(config)
    if verbose:
        os.environ["SMARTCITY_LOG_LEVEL"] = "DEBUG"
    # Lenient here (client commands too); process commands validate settings in _start_process
    configure_logging(force=False)


def _start_process(data: Path | None, *, demo: bool | None = None, access_log: bool = True) -> None:
    """Validate the settings and set up logging; a bad setting exits 2 with its message."""
    from smartcity.ops import start_process
    from smartcity.settings import ConfigError

    try:
        start_process(data, demo=demo, access_log=access_log)
    except ConfigError as exc:
        _fail(str(exc), 2)


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to create.",
)
@click.option("--validators", type=click.IntRange(1, 100), default=1, show_default=True)
@click.option("--observers", type=click.IntRange(0, 100), default=0, show_default=True)
@click.option(
    "--chain-id",
    default=None,
    help="The chain's id (default: smartcity-demo-<6 random hex>, one of its own per chain).",
)
@click.option(
    "--container-network",
    is_flag=True,
    help="Address peers by node name and listen on all interfaces (compose.yaml).",
)
def init(
    out: Path, validators: int, observers: int, chain_id: str | None, container_network: bool
) -> None:
    """Create keys, genesis and node homes, with the demo organisations of the applications."""
    from smartcity.suite import demo_chain_id

    try:
        genesis = init_suite(
            out,
            validators=validators,
            observers=observers,
            chain_id=chain_id or demo_chain_id(),
            contracts=[(e.name, e.contract) for e in SERVICES if e.contract],
            container_network=container_network,
        )
    except ChainError as exc:
        _fail(str(exc))
    click.echo(f"chain {genesis.chain_id}: genesis {genesis.hash[:16]}… in {out / 'genesis.json'}")
    for node in sorted((out / "nodes").iterdir()):
        click.echo(f"  node home   {node}")
    for org in genesis.organisations:
        click.echo(
            f"  org {org.id:<15} roles {', '.join(org.roles):<28}"
            f" key {out / 'orgs' / org.id / 'key.jwk'}"
        )


@main.command()
@click.option(
    "--home",
    "node_home",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="A node home: DIR/nodes/<name> made by `smartcity init`.",
)
@click.option("--host", default=None, help="Override the API listen address.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Override the API port.")
def node(node_home: Path, host: str | None, port: int | None) -> None:
    """Run one node and its API."""
    import uvicorn

    from chain.server import open_node
    from smartcity.logs import uvicorn_options
    from smartcity.ops import settle_heap

    try:
        home = load_node_home(node_home)
    except ChainError as exc:
        _fail(str(exc))
    _start_process(home.genesis_path.parent)
    try:
        running = open_node(home, database_url=database_url_from_env())
    except ChainError as exc:
        _fail(str(exc))
    listen_host, listen_port = host or home.settings.host, port or home.settings.port
    click.echo(
        f"{home.settings.name} ({home.settings.role}) at height {running.node.ledger.height},"
        f" API on http://{listen_host}:{listen_port}",
        err=True,
    )
    settle_heap()
    uvicorn.run(running.app, host=listen_host, port=listen_port, **uvicorn_options())


@main.command()
@click.option(
    "--data", type=click.Path(file_okay=False, path_type=Path), default=DATA, show_default=True
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--validators",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Validators to create on first run (all run in this process).",
)
@click.option("--simulate", is_flag=True, help="Also run simulated road sensors feeding the suite.")
def up(data: Path, host: str, port: int, validators: int, simulate: bool) -> None:
    """Run the whole suite in one process (initialising DATA on first run)."""
    import uvicorn

    from smartcity.console import announce, log_destination, port_problem
    from smartcity.logs import active_format, redact, uvicorn_options
    from smartcity.ops import settle_heap
    from smartcity.settings import is_demo
    from smartcity.suite import open_suite

    # Verify the port is free before opening anything: one line, not a banner and a traceback
    problem = port_problem(host, port)
    if problem:
        _fail(problem)
    # A folder `up` creates now is a demo folder; access logs only at DEBUG (the page polls)
    _start_process(
        data, demo=is_demo(data) or not (data / "genesis.json").exists(), access_log=False
    )
    try:
        suite = open_suite(data, host=host, port=port, validators=validators)
    except ChainError as exc:
        _fail(str(exc))
    genesis = suite.node.ledger.genesis
    base, proof = f"http://{host}:{port}", data / "README.md.proof.json"
    banner = [
        ("initialised" if suite.created else "continuing")
        + f" chain {genesis.chain_id} in {data}/ at height {suite.node.ledger.height}",
        f"  dashboard   {base}/",
        f"  chain API   {base}/chain   (OpenAPI: {base}/chain/docs)",
        f"  nodes       {', '.join(f'{base}/nodes/{n}' for n in suite.cluster.nodes)}",
        *(f"  {name:<11} {base}/{name}   (OpenAPI: {base}/{name}/docs)" for name in suite.services),
        f"  demo orgs   {', '.join(o.id for o in genesis.organisations)}  (keys in {data}/orgs/)",
        f"  try         smartcity anchor README.md --as city-agency --proof-out {proof}"
        f" && smartcity verify-proof {proof} --genesis {data}/genesis.json",
        f"  logs        {log_destination(active_format())}",
        "  stop        Ctrl-C",
    ]
    announce(banner, chain_id=genesis.chain_id, url=base, data=str(data))
    from smartcity.iot import IotHandle, start_iot
    from smartcity.ops import attach_gateway

    iot: list[IotHandle] = []

    def start_sensors() -> None:
        iot.append(start_iot(suite, simulate=simulate, base_url=base))
        attach_gateway(suite.app, iot[0].gateway)  # into the process's /metrics and /readyz
        note = "   (simulated sensors on)" if simulate else ""
        click.echo(f"  gateway     {iot[0].health_url}, broker {redact(iot[0].broker_url)}{note}")

    def stop_sensors() -> None:
        for handle in iot:
            handle.stop()

    suite.app.router.on_startup.append(start_sensors)
    suite.app.router.on_shutdown.insert(0, stop_sensors)
    settle_heap()
    uvicorn.run(suite.app, host=host, port=port, **uvicorn_options())


@main.command()
@click.argument("name", type=click.Choice([entry.name for entry in SERVICES]))
@HOME_OPTION
@click.option("--node", "node_url", required=True, help="The chain node API this service uses.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), required=True)
def service(name: str, home: Path, node_url: str, host: str, port: int) -> None:
    """Run one application service as its own process, against a remote chain node."""
    import uvicorn

    from chain.db import sqlite_url
    from services.common.context import ServiceContext
    from services.common.ledger import RemoteLedger
    from smartcity.logs import uvicorn_options
    from smartcity.ops import instrument_service, settle_heap
    from smartcity.suite import OPERATOR_ORG, _import

    entry = next(e for e in SERVICES if e.name == name)
    _start_process(home)
    suite = SuiteHome(home)
    try:
        genesis, key = suite.genesis(), suite.org_key(OPERATOR_ORG)
        client = ChainClient(node_url, identity=Identity(OPERATOR_ORG, key))
        client.status()
        context = ServiceContext(
            name=name,
            ledger=RemoteLedger(client, genesis),
            database_url=database_url_from_env() or sqlite_url(home / f"{name}.db"),
            data_dir=home,
            operator_org=OPERATOR_ORG,
            operator_key=key,
            demo=True,
        )
        app = _import(entry.app)(context)
        instrument_service(app, context)
    except ChainError as exc:
        _fail(str(exc))
    click.echo(f"{name} service on http://{host}:{port}, chain at {node_url}", err=True)
    settle_heap()
    uvicorn.run(app, host=host, port=port, **uvicorn_options())


@main.command()
@HOME_OPTION
@click.option("--as", "org", required=True, help="Organisation whose key signs the token.")
@click.option(
    "--audience",
    type=click.Choice(AUDIENCES),
    default=AUDIENCE_CHAIN,
    show_default=True,
    help="Service the token is for: the chain API or one of the application services.",
)
@click.option(
    "--ttl",
    type=click.IntRange(1, MAX_TTL_S),
    default=DEFAULT_TTL_S,
    show_default=True,
    help="Lifetime in seconds.",
)
def token(home: Path, org: str, audience: str, ttl: int) -> None:
    """Print a short-lived bearer JWT signed with ORG's registered key."""
    try:
        key = SuiteHome(home).org_key(org)
        click.echo(mint_token(key, org=org, audience=audience, ttl_s=ttl))
    except (ChainError, AuthError) as exc:
        _fail(str(exc))


@main.command()
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
    suite = SuiteHome(home)
    try:
        key, genesis = suite.org_key(org), suite.genesis()
        url = node_url or suite.api_url()
    except ChainError as exc:
        _fail(str(exc))
    records = []
    for path in files:
        records.append(_file_hash(path))
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
                    _fail(f"anchor failed: {receipt['code']}: {receipt['error']}")
                tx_hash = client.state("anchors", f"root:{org}:{root}")
                click.echo(
                    f"these files were already anchored by {tx_hash}; using that anchor", err=True
                )
            bundle = client.proof(tx_hash)
        except ChainError as exc:
            _fail(str(exc))
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


@main.group()
def device() -> None:
    """Road sensors on the chain: register, suspend, reinstate (signed by the road authority)."""


def _device_call(
    home: Path, org: str, node_url: str | None, method: str, args: dict[str, Any]
) -> None:
    from smartcity.gov import submit

    receipt = submit(home, org, node_url, "roadhealth", method, args)
    click.echo(
        f"{method} {args['device']}: committed in block {receipt['height']} (tx {receipt['tx']})"
    )


DEVICE_OPTIONS = [
    HOME_OPTION,
    click.option(
        "--as",
        "org",
        default="road-authority",
        show_default=True,
        help="Organisation that signs (needs the road_authority role).",
    ),
    click.option("--node", "node_url", default=None, help="Node API URL (default: the suite's)."),
]


def _device_options(fn: Any) -> Any:
    for option in reversed(DEVICE_OPTIONS):
        fn = option(fn)
    return fn


@device.command("register")
@click.argument("device_id")
@click.option(
    "--pub-key", required=True, help="The device's Ed25519 public key, 64 hex characters."
)
@click.option(
    "--class",
    "vehicle_class",
    type=click.Choice(["golden", "car", "van", "bus"]),
    default="car",
    show_default=True,
)
@click.option("--segment", default=None, help="Home road segment of a roadside unit.")
@_device_options
def device_register(
    device_id: str,
    pub_key: str,
    vehicle_class: str,
    segment: str | None,
    home: Path,
    org: str,
    node_url: str | None,
) -> None:
    """Register a road sensor and its public key."""
    args: dict[str, Any] = {"device": device_id, "pub_key": pub_key, "vehicle_class": vehicle_class}
    if segment:
        args["home_segment"] = segment
    _device_call(home, org, node_url, "register_device", args)


@device.command("suspend")
@click.argument("device_id")
@click.option("--reason", default="suspended", show_default=True)
@_device_options
def device_suspend(device_id: str, reason: str, home: Path, org: str, node_url: str | None) -> None:
    """Suspend a sensor: the gateway refuses its messages from the next block on."""
    _device_call(home, org, node_url, "suspend_device", {"device": device_id, "reason": reason})


@device.command("reinstate")
@click.argument("device_id")
@_device_options
def device_reinstate(device_id: str, home: Path, org: str, node_url: str | None) -> None:
    """Reinstate a suspended sensor."""
    _device_call(home, org, node_url, "reinstate_device", {"device": device_id})


@main.command("verify-proof")
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
@click.option("--json", "as_json", is_flag=True, help="Print what was proven as JSON.")
def verify_proof(
    bundle: Path,
    genesis: Path,
    file_: Path | None,
    trust: str | None,
    checkpoint: Path | None,
    trusting_period_h: int,
    as_json: bool,
) -> None:
    """Verify a proof bundle offline; exit 0 and say what it proves, or exit 1 and say why not."""
    try:
        trusted = load_genesis(genesis)
    except ChainError as exc:
        _fail(_printable(str(exc)), 2)
    anchor = _trust_anchor(trust, checkpoint, trusting_period_h)
    try:
        document = light.parse_bundle(bundle.read_bytes())
    except (OSError, ChainError) as exc:
        _fail(_printable(f"INVALID: {bundle} is not a JSON proof bundle: {exc}"))
    try:
        proven = verify_bundle(document, trusted, anchor)
    except ChainError as exc:
        _fail(_printable(f"INVALID: {exc}"))
    if file_ is not None:
        digest = _file_hash(file_).hex()
        if proven.facts.get("record") != digest:
            _fail(
                f"INVALID: {file_} has sha256 {digest},"
                f" the bundle proves {light.shown(proven.facts.get('record'))}"
            )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "valid": True,
                    "kind": proven.kind,
                    "height": proven.height,
                    "block_hash": proven.block_hash,
                    "trusted": None if anchor is None else f"{anchor.height}:{anchor.hash}",
                    "facts": proven.facts,
                },
                indent=2,
                ensure_ascii=True,
            )
        )
    else:
        click.echo(_printable(f"VALID: {proven.summary}"))


def _trust_anchor(
    trust: str | None, checkpoint: Path | None, trusting_period_h: int
) -> light.Trust | None:
    """The --trust anchor, with the --checkpoint block's header and certificate if given."""
    if trust is None:
        if checkpoint is not None:
            _fail(
                "--checkpoint needs --trust HEIGHT:HASH (the checkpoint's hash is what pins it)", 2
            )
        return None
    try:
        height, digest = light.parse_trust(trust)
    except ValueError as exc:
        _fail(str(exc), 2)
    header = certificate = None
    if checkpoint is not None:
        try:
            block = light.parse_bundle(checkpoint.read_bytes())
            header, certificate = block["header"], block["certificate"]
        except (OSError, ChainError, KeyError, TypeError) as exc:
            _fail(_printable(f"{checkpoint} is not a block (GET /v1/blocks/{{height}}): {exc}"), 2)
    return light.Trust(
        height=height, hash=digest, now_ms=int(time.time() * 1000),
        trusting_period_ms=trusting_period_h * 3_600_000, header=header, certificate=certificate,
    )  # fmt: skip


def _printable(text: str) -> str:
    """Escape what a terminal would hide or garble (controls, zero-width and bidi characters)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


@main.command()
@click.option("--seed", type=int, default=None, help="Run exactly this seed (replay).")
@click.option(
    "--seeds",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="How many seeds to run, from --seed-start.",
)
@click.option("--seed-start", type=int, default=0, show_default=True)
@click.option("--validators", type=click.IntRange(1, 200), default=4, show_default=True)
@click.option(
    "--byzantine",
    type=click.IntRange(0, 66),
    default=None,
    help="Byzantine validators (default: the most tolerated, (n-1)//3).",
)
@click.option(
    "--behaviour",
    type=click.Choice(BEHAVIOURS),
    default=None,
    help="What every Byzantine validator does (default: chosen by seed).",
)
@click.option(
    "--faults",
    default=None,
    help=f"Comma-separated subset of {','.join(FAULTS)}, or 'none' (default: chosen by seed).",
)
@click.option("--observers", type=click.IntRange(0, 1000), default=0, show_default=True)
@click.option("--heights", type=click.IntRange(1, 10_000), default=4, show_default=True)
@click.option("--latency", default="5,60", show_default=True, help="Min,max one-way latency in ms.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
def sim(
    seed: int | None,
    seeds: int,
    seed_start: int,
    validators: int,
    byzantine: int | None,
    behaviour: str | None,
    faults: str | None,
    observers: int,
    heights: int,
    latency: str,
    as_json: bool,
) -> None:
    """Run the consensus in the deterministic simulator; exit 1 with a replay line on failure."""
    f = (validators - 1) // 3 if byzantine is None else byzantine
    if 3 * f >= validators:
        raise click.BadParameter(
            f"{f} Byzantine of {validators} breaks n > 3f", param_hint="--byzantine"
        )
    chosen: tuple[str, ...] | None = None
    if faults is not None:
        chosen = (
            () if faults == "none" else tuple(x.strip() for x in faults.split(",") if x.strip())
        )
        unknown = set(chosen) - set(FAULTS)
        if unknown:
            raise click.BadParameter(
                f"unknown {sorted(unknown)}; choose from {FAULTS}", param_hint="--faults"
            )
    try:
        low, high = (int(x) for x in latency.split(","))
    except ValueError as exc:
        raise click.BadParameter("use MIN,MAX milliseconds", param_hint="--latency") from exc
    run_seeds = [seed] if seed is not None else list(range(seed_start, seed_start + seeds))
    failures = 0
    for index, current in enumerate(run_seeds, 1):
        scenario = Scenario(
            seed=current,
            validators=validators,
            byzantine=f,
            behaviour=behaviour,
            faults=chosen,
            observers=observers,
            heights=heights,
            latency_ms=(low, high),
        )
        try:
            result = run_scenario(scenario)
        except Failure as exc:
            failures += 1
            click.echo(f"FAIL seed {current}: {exc}", err=True)
            continue
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "seed": current,
                        "validators": validators,
                        "byzantine": f,
                        "heights": result.committed_heights,
                        "virtual_ms": result.virtual_ms,
                        "messages": result.messages,
                        "max_round": result.max_round,
                        "evidence": len(result.evidence),
                    }
                )
            )
        elif len(run_seeds) > 1 and index % 10 == 0:
            click.echo(f"{index}/{len(run_seeds)} seeds, {failures} failed", err=True)
    click.echo(f"{len(run_seeds) - failures} passed, {failures} failed")
    if failures:
        sys.exit(1)


def _file_hash(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _bundle_path(path: Path, proof_out: Path | None, count: int) -> Path:
    if proof_out is None:
        return path.with_name(path.name + ".proof.json")
    return proof_out if count == 1 else proof_out / (path.name + ".proof.json")


LAZY_GROUPS = {
    "vc": "services.identity.cli:vc",
    "credit": "services.credit.cli:credit",
    "road": "services.roadhealth.cli:road",
    "backup": "smartcity.backup:backup_command",
    "restore": "smartcity.backup:restore_command",
    "gov": "smartcity.gov:gov",
}
