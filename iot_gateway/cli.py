"""`python -m iot_gateway simulate`: the sensor simulator's commands.

A gateway process runs as `smartcity gateway run` (smartcity/cli_gateway.py): it validates the
suite's settings and sets up logs like every smartcity process, which live above this package.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from iot_gateway.errors import GatewayError

if TYPE_CHECKING:
    from iot_gateway.simulator import Network

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


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


def _build_network(
    city: str,
    seed: int,
    segments: int,
    devices: int,
    segment_length: float,
    rate_hz: int,
    network_path: str | None,
) -> Network:
    """The network that _network_options describe."""
    from iot_gateway.simulator import build_network

    return build_network(
        city=city,
        seed=seed,
        n_segments=segments,
        n_devices=devices,
        segment_length_m=segment_length,
        rate_hz=rate_hz,
        geojson=_read_network(network_path),
    )


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
    network = _build_network(city, seed, segments, devices, segment_length, rate_hz, network_path)
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
    from iot_gateway.simulator import Fleet

    if count is None and duration is None:
        raise click.UsageError("give --count or --duration")
    network = _build_network(city, seed, segments, devices, segment_length, rate_hz, network_path)
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


def main() -> None:
    cli = click.Group("iot_gateway", commands={"simulate": simulate})
    cli()
