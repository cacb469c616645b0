"""`smartcity gateway run`: one IoT gateway process (compose.yaml's gateway entrypoint).

It validates the suite's settings and sets up JSON or text logs like every smartcity process
(smartcity.ops.start_process, docs/operations.md), then runs `iot_gateway.gateway.Gateway`
until SIGTERM or SIGINT. The gateway's modules load when the command runs, not for `--help`.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import click

from iot_gateway.wire import TOPIC_PATTERN

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
# GatewaySettings' registry bounds (iot_gateway.registry), spelled here so that --help does not
# load the gateway; tests/iot_gateway/test_registry_options.py keeps them equal
REGISTRY_CAPACITY = 20_000
REGISTRY_UNKNOWN_CAPACITY = 2_048
REGISTRY_UNKNOWN_TTL_S = 60.0


def _finite_seconds(value: float) -> float:
    if not math.isfinite(value):  # click's FloatRange lets nan and inf through
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


@click.group("gateway")
def gateway() -> None:
    """The IoT gateway: MQTT in, checked, stored, anchored, forwarded to road-health."""


@gateway.command("run")
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="suite folder (genesis, suite.json, orgs/bsn-operator/key.jwk)",
)
@click.option("--broker", default=DEFAULT_BROKER, show_default=True, envvar="SMARTCITY_MQTT_URL")
@click.option(
    "--roadhealth",
    "roadhealth_url",
    required=True,
    help="road-health base URL, e.g. http://127.0.0.1:8000/roadhealth",
)
@click.option("--chain", "chain_url", help="node API URL (default: the suite's)")
@click.option("--outbox", "outbox_url", help="outbox database URL (default: DATA/gateway.db)")
@click.option(
    "--instance",
    default="gateway-0",
    show_default=True,
    help="client id and outbox owner; keep it across restarts",
)
@click.option("--group", default="iot-gateway", show_default=True)
@click.option("--topic", default=TOPIC_PATTERN, show_default=True, help="topic filter")
@click.option(
    "--session-expiry",
    type=int,
    default=24 * 3600,
    show_default=True,
    help="seconds the broker keeps the session (and its queue) while we are down",
)
@click.option("--protocol", type=click.Choice(["auto", "5", "3.1.1"]), default="auto")
@click.option("--health-port", type=int, default=0, show_default=True)
@click.option(
    "--batch-max",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="messages per anchored batch",
)
@click.option(
    "--batch-wait",
    type=click.FloatRange(min=0.0),
    callback=lambda _ctx, _param, value: _finite_seconds(value),
    default=1.0,
    show_default=True,
    help="seconds before a non-full batch is sealed and anchored (the anchoring window)",
)
@click.option(
    "--check-processes",
    type=click.IntRange(0, 64),
    default=2,
    show_default=True,
    help="worker processes checking messages (JSON, schema, signature); 0: the gateway's threads",
)
@click.option(
    "--registry-capacity",
    type=click.IntRange(min=1),
    default=REGISTRY_CAPACITY,
    show_default=True,
    help="registered devices kept in memory, least recently seen dropped first: twice the fleet",
)
@click.option(
    "--registry-unknown-capacity",
    type=click.IntRange(min=1),
    default=REGISTRY_UNKNOWN_CAPACITY,
    show_default=True,
    help="ids the chain does not know, kept apart so they never push a registered device out",
)
@click.option(
    "--registry-unknown-ttl",
    type=click.FloatRange(min=0.0, min_open=True),
    callback=lambda _ctx, _param, value: _finite_seconds(value),
    default=REGISTRY_UNKNOWN_TTL_S,
    show_default=True,
    help="seconds an unknown id's answer is kept (one chain read per junk id per this)",
)
@click.option("--ready-file", type=click.Path(path_type=Path), help="write health URL when up")
def run_gateway_cmd(
    data: Path,
    broker: str,
    roadhealth_url: str,
    chain_url: str | None,
    outbox_url: str | None,
    instance: str,
    group: str,
    topic: str,
    session_expiry: int,
    protocol: str,
    health_port: int,
    batch_max: int,
    batch_wait: float,
    check_processes: int,
    registry_capacity: int,
    registry_unknown_capacity: int,
    registry_unknown_ttl: float,
    ready_file: Path | None,
) -> None:
    """Run one gateway process until SIGTERM or SIGINT."""
    from chain.client import ChainClient, Identity
    from chain.home import SuiteHome
    from iot_gateway.forwarder import ForwardSettings
    from iot_gateway.gateway import Gateway, GatewaySettings
    from iot_gateway.source import BrokerAddress
    from services.common.ledger import RemoteLedger
    from smartcity.demo import OPERATOR_ORG
    from smartcity.ops import start_process
    from smartcity.settings import ConfigError

    try:  # validated settings and JSON/text logs, as every smartcity process (docs/operations.md)
        start_process(data)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    home = SuiteHome(data)
    key = home.org_key(OPERATOR_ORG)
    client = ChainClient(chain_url or home.api_url(), identity=Identity(OPERATOR_ORG, key))
    settings = GatewaySettings(
        broker_url=broker,
        outbox_url=outbox_url or f"sqlite:///{data / 'gateway.db'}",
        instance=instance,
        group=group,
        topic=topic,
        session_expiry_s=session_expiry,
        protocol=protocol,  # type: ignore[arg-type]
        health_port=health_port,
        check_processes=check_processes,
        registry_capacity=registry_capacity,
        registry_unknown_capacity=registry_unknown_capacity,
        registry_unknown_ttl_s=registry_unknown_ttl,
        forward=ForwardSettings(
            roadhealth_url=roadhealth_url,
            operator_org=OPERATOR_ORG,
            operator_key=key,
            batch_max=batch_max,
            batch_wait_s=batch_wait,
        ),
    )
    BrokerAddress.parse(broker)
    running = Gateway(settings, ledger=RemoteLedger(client, home.genesis()))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    running.start()
    if ready_file is not None and running.health is not None:
        ready_file.write_text(running.health.url)
    done.wait()
    running.stop()
