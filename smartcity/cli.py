"""`smartcity`: set up a chain, run nodes or the suite, anchor files, mint tokens, verify proofs."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import click

from chain.auth import AUDIENCE_CHAIN, DEFAULT_TTL_S, MAX_TTL_S, AuthError, mint_token
from chain.client import ChainClient, Identity
from chain.db import database_url_from_env
from chain.errors import ChainError
from chain.home import SuiteHome, init_suite, load_node_home
from chain.sim.world import BEHAVIOURS, FAULTS, Failure, Scenario, run_scenario
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


LAZY_GROUPS = {
    "anchor": "smartcity.cli_proofs:anchor",
    "verify-proof": "smartcity.cli_proofs:verify_proof",
    "vc": "services.identity.cli:vc",
    "credit": "services.credit.cli:credit",
    "road": "services.roadhealth.cli:road",
    "backup": "smartcity.backup:backup_command",
    "restore": "smartcity.backup:restore_command",
    "gov": "smartcity.gov:gov",
    "device": "smartcity.devices:device",
}
