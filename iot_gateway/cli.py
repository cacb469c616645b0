"""Click groups: `simulate` (sensor simulator) and `gateway` (run a gateway process)."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import click

from chain.client import ChainClient, Identity
from chain.home import SuiteHome
from iot_gateway.errors import GatewayError
from iot_gateway.forwarder import ForwardSettings
from iot_gateway.source import BrokerAddress
from iot_gateway.wire import TOPIC_PATTERN
from services.common.ledger import RemoteLedger

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
OPERATOR_ORG = "bsn-operator"


def _network_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--city", default="demo", show_default=True),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option("--segments", type=int, default=6, show_default=True),
            click.option("--devices", type=int, default=10, show_default=True),
            click.option("--segment-length", type=float, default=400.0, show_default=True),
            click.option("--rate-hz", type=int, default=50, show_default=True),
            click.option(
                "--network",
                "network_path",
                default=None,
                help="GeoJSON of LineString segments to drive, or 'demo' for road-health's"
                " demo network (default: a synthetic street)",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _read_network(path: str | None) -> dict[str, Any] | None:
    from iot_gateway.simulator import default_geojson_path

    if path is None:
        return None
    source = default_geojson_path() if path == "demo" else Path(path)
    try:
        doc: dict[str, Any] = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {source}: {exc}", param_hint="--network") from exc
    return doc


@click.group("simulate")
def simulate() -> None:
    """Simulated road sensors: vehicles over known roads publishing signed telemetry."""


@simulate.command("truth")
@_network_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="ground truth JSON")
@click.option("--geojson", type=click.Path(path_type=Path), help="also write the network")
def truth_cmd(
    city: str,
    seed: int,
    segments: int,
    devices: int,
    segment_length: float,
    rate_hz: int,
    network_path: str | None,
    out: Path,
    geojson: Path | None,
) -> None:
    """Write the ground truth (segment IRI and class, anomalies, device keys) for scoring."""
    from iot_gateway.simulator import build_network

    network = build_network(
        city=city,
        seed=seed,
        n_segments=segments,
        n_devices=devices,
        segment_length_m=segment_length,
        rate_hz=rate_hz,
        geojson=_read_network(network_path),
    )
    out.write_text(json.dumps(network.truth(), indent=2) + "\n")
    if geojson is not None:
        geojson.write_text(json.dumps(network.geojson(), indent=2) + "\n")
    click.echo(json.dumps({"truth": str(out), "segments": segments, "devices": devices}))


@simulate.command("run")
@_network_options
@click.option("--broker", default=DEFAULT_BROKER, show_default=True, envvar="SMARTCITY_MQTT_URL")
@click.option("--rate", type=float, default=20.0, show_default=True, help="messages per second")
@click.option("--count", type=int, help="stop after this many messages")
@click.option("--duration", type=float, help="stop after this many seconds")
@click.option("--bad-share", type=float, default=0.0, show_default=True)
@click.option(
    "--bad-kinds", default="bad_signature,unknown_device,replayed_seq,malformed", show_default=True
)
@click.option("--truth", type=click.Path(path_type=Path), help="write the ground truth here")
@click.option(
    "--encoding",
    type=click.Choice(["json", "cbor"]),
    default="json",
    show_default=True,
    help="payload encoding; cbor publishes on .../telemetry/cbor",
)
def run_cmd(
    city: str,
    seed: int,
    segments: int,
    devices: int,
    segment_length: float,
    rate_hz: int,
    network_path: str | None,
    broker: str,
    rate: float,
    count: int | None,
    duration: float | None,
    bad_share: float,
    bad_kinds: str,
    truth: Path | None,
    encoding: str,
) -> None:
    """Publish signed telemetry (one window per message) at --rate, some bad if asked."""
    from iot_gateway.publisher import connect_publisher, publish_fleet
    from iot_gateway.simulator import Fleet, build_network

    if count is None and duration is None:
        raise click.UsageError("give --count or --duration")
    network = build_network(
        city=city,
        seed=seed,
        n_segments=segments,
        n_devices=devices,
        segment_length_m=segment_length,
        rate_hz=rate_hz,
        geojson=_read_network(network_path),
    )
    if truth is not None:
        truth.write_text(json.dumps(network.truth(), indent=2) + "\n")
    kinds = tuple(k for k in bad_kinds.split(",") if k)
    try:
        fleet = Fleet(
            network,
            bad_share=bad_share,
            bad_kinds=kinds,
            seed=seed,
            encoding="cbor" if encoding == "cbor" else "json",
        )
        client = connect_publisher(broker, f"sim-{uuid.uuid4().hex[:8]}")
        report = publish_fleet(client, fleet, count=count, duration_s=duration, rate_per_s=rate)
    except (ValueError, GatewayError) as exc:
        raise click.ClickException(str(exc)) from exc
    client.loop_stop()
    client.disconnect()
    click.echo(json.dumps(report.as_dict()))


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
    "--batch-max", type=int, default=1000, show_default=True, help="messages per anchored batch"
)
@click.option(
    "--batch-wait",
    type=float,
    default=1.0,
    show_default=True,
    help="seconds before a non-full batch is sealed and anchored (the anchoring window)",
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
    ready_file: Path | None,
) -> None:
    """Run one gateway process until SIGTERM or SIGINT."""
    from iot_gateway.gateway import Gateway, GatewaySettings
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


def main() -> None:
    cli = click.Group("iot_gateway", commands={"simulate": simulate, "gateway": gateway})
    cli()
