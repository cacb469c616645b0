"""`smartcity device`: road sensors on the chain, registered, suspended and reinstated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from smartcity.cli_common import HOME_OPTION


@click.group()
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
