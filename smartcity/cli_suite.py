"""The commands that set up and run the suite: `init`, `node`, `up` and `service`.

Heavy modules (the node, the services, uvicorn, SQLAlchemy) are imported inside each command,
so that `smartcity COMMAND --help` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from chain.errors import ChainError
from smartcity.cli_common import DATA, HOME_OPTION, fail, start_process_or_exit
from smartcity.registry import SERVICES, genesis_contracts

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.common.context import ServiceContext


@click.command()
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
@click.option(
    "--p2p-plaintext",
    is_flag=True,
    help="Unencrypted node links instead of TLS: a demo on one machine only (loopback).",
)
@click.option(
    "--crypto",
    type=click.Choice(["ed25519-sha256", "sm2-sm3"]),
    default="ed25519-sha256",
    show_default=True,
    help="The chain's crypto suite: sm2-sm3 is China's national suite (SM2, SM3, SM4) for the"
    " chain, its nodes, the services' keys, road devices and identity's sealed fields.",
)
def init(
    out: Path,
    validators: int,
    observers: int,
    chain_id: str | None,
    container_network: bool,
    p2p_plaintext: bool,
    crypto: str,
) -> None:
    """Create keys, genesis and node homes, with the demo organisations of the applications."""
    from smartcity.demo import init_suite
    from smartcity.suite import demo_chain_id

    try:
        genesis = init_suite(
            out,
            validators=validators,
            observers=observers,
            chain_id=chain_id or demo_chain_id(),
            contracts=genesis_contracts(SERVICES),
            container_network=container_network,
            p2p_plaintext=p2p_plaintext,
            crypto=crypto,
        )
    except ChainError as exc:
        fail(str(exc))
    click.echo(
        f"chain {genesis.chain_id} ({genesis.crypto}): genesis {genesis.hash[:16]}…"
        f" in {out / 'genesis.json'}"
    )
    for node in sorted((out / "nodes").iterdir()):
        click.echo(f"  node home   {node}")
    for org in genesis.organisations:
        click.echo(
            f"  org {org.id:<15} roles {', '.join(org.roles):<28}"
            f" key {out / 'orgs' / org.id / 'key.jwk'}"
        )


@click.command()
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

    from chain.db import database_url_from_env
    from chain.home import load_node_home
    from chain.server import open_node
    from smartcity.logs import uvicorn_options
    from smartcity.ops import settle_heap

    try:
        home = load_node_home(node_home)
    except ChainError as exc:
        fail(str(exc))
    start_process_or_exit(home.genesis_path.parent)
    try:
        running = open_node(home, database_url=database_url_from_env())
    except ChainError as exc:
        fail(str(exc))
    listen_host, listen_port = host or home.settings.host, port or home.settings.port
    click.echo(
        f"{home.settings.name} ({home.settings.role}) at height {running.node.ledger.height},"
        f" API on http://{listen_host}:{listen_port}",
        err=True,
    )
    settle_heap()
    uvicorn.run(running.app, host=listen_host, port=listen_port, **uvicorn_options())


def _check_suite_of(data: Path, crypto: str | None) -> None:
    """Refuse `--crypto` naming another suite than an existing chain's: the genesis fixes it,
    and `make up CRYPTO=sm2-sm3` over an Ed25519 ./data ran on Ed25519 without a word."""
    genesis_path = data / "genesis.json"
    if crypto is None or not genesis_path.exists():
        return
    from chain.genesis import load_genesis

    try:
        existing = load_genesis(genesis_path).crypto
    except ChainError as exc:
        fail(str(exc))
    if existing != crypto:
        fail(
            f"{data}/ holds a chain of the {existing} suite, fixed in its genesis; --crypto"
            f" {crypto} applies to a new chain only: leave it out to continue this one, or"
            f" give another --data (or move {data}/ away) to start an {crypto} chain",
            code=2,
        )


@click.command()
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
@click.option(
    "--crypto",
    type=click.Choice(["ed25519-sha256", "sm2-sm3"]),
    default=None,
    help="The crypto suite of a chain created on first run [default: ed25519-sha256]; an"
    " existing DATA keeps its own, and naming another suite for it is refused.",
)
def up(
    data: Path, host: str, port: int, validators: int, simulate: bool, crypto: str | None
) -> None:
    """Run the whole suite in one process (initialising DATA on first run)."""
    import uvicorn

    from chain.suites import DEFAULT_SUITE
    from smartcity.console import announce, log_destination, port_problem
    from smartcity.logs import active_format, redact, uvicorn_options
    from smartcity.ops import settle_heap
    from smartcity.settings import is_demo
    from smartcity.suite import open_suite

    _check_suite_of(data, crypto)
    # Verify the port is free before opening anything: one line, not a banner and a traceback
    problem = port_problem(host, port)
    if problem:
        fail(problem)
    # A folder `up` creates now is a demo folder; access logs only at DEBUG (the page polls)
    start_process_or_exit(
        data, demo=is_demo(data) or not (data / "genesis.json").exists(), access_log=False
    )
    try:
        suite = open_suite(
            data,
            host=host,
            port=port,
            validators=validators,
            crypto=crypto or DEFAULT_SUITE,
        )
    except ChainError as exc:
        fail(str(exc))
    genesis = suite.node.ledger.genesis
    base, proof = f"http://{host}:{port}", data / "README.md.proof.json"
    banner = [
        ("initialised" if suite.created else "continuing")
        + f" chain {genesis.chain_id} ({genesis.crypto}) in {data}/"
        f" at height {suite.node.ledger.height}",
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


@click.command()
@click.argument("name", type=click.Choice([entry.name for entry in SERVICES]))
@HOME_OPTION
@click.option("--node", "node_url", required=True, help="The chain node API this service uses.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), required=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Identity only: worker processes sharing the port (one per core); they share only the"
    " database and the chain.",
)
def service(name: str, home: Path, node_url: str, host: str, port: int, workers: int) -> None:
    """Run one application service as its own process, against a remote chain node."""
    import uvicorn

    from smartcity.logs import uvicorn_options
    from smartcity.ops import settle_heap

    if workers > 1 and name != "identity":
        # Only identity's per-process state is known safe to split (docs/operations.md)
        fail(f"--workers is for the identity service; run {name} as replicas instead", 2)
    start_process_or_exit(home)
    if workers == 1:
        app = _service_app(name, home, node_url)
        click.echo(f"{name} service on http://{host}:{port}, chain at {node_url}", err=True)
        settle_heap()
        uvicorn.run(app, host=host, port=port, **uvicorn_options())
        return
    from smartcity.workers import serve_workers

    # Built once here first: a bad setting fails once, and the tables and keys a service
    # creates on first start are made before the workers race to make them
    _service_app(name, home, node_url)
    click.echo(
        f"{name} service on http://{host}:{port} ({workers} workers), chain at {node_url}",
        err=True,
    )
    code = serve_workers(
        service_worker_app, (name, home, node_url), host=host, port=port, workers=workers
    )
    if code:
        fail(f"a worker of the {name} service exited with {code}", code)


def service_worker_app(name: str, home: Path, node_url: str) -> FastAPI:
    """One worker of `smartcity service NAME --workers N` (in a spawned process)."""
    from smartcity.ops import settle_heap

    start_process_or_exit(home)
    app = _service_app(name, home, node_url)
    settle_heap()
    return app


def _service_context(name: str, home: Path, node_url: str) -> ServiceContext:
    from chain.client import ChainClient, Identity
    from chain.db import database_url_from_env, sqlite_url
    from chain.home import SuiteHome
    from services.common.context import ServiceContext
    from services.common.ledger import RemoteLedger
    from smartcity.demo import OPERATOR_ORG

    suite = SuiteHome(home)
    try:
        genesis, key = suite.genesis(), suite.org_key(OPERATOR_ORG)
        client = ChainClient(node_url, identity=Identity(OPERATOR_ORG, key))
        client.status()
    except ChainError as exc:
        fail(str(exc))
    return ServiceContext(
        name=name,
        ledger=RemoteLedger(client, genesis),
        database_url=database_url_from_env() or sqlite_url(home / f"{name}.db"),
        data_dir=home,
        operator_org=OPERATOR_ORG,
        operator_key=key,
        demo=True,
    )


def _service_app(name: str, home: Path, node_url: str) -> FastAPI:
    from smartcity.ops import instrument_service

    entry = next(e for e in SERVICES if e.name == name)
    context = _service_context(name, home, node_url)
    try:
        app = entry.app()(context)
        instrument_service(app, context)
    except ChainError as exc:
        fail(str(exc))
    return app
