"""A committed block as the chain's event stream delivers it, holding road-health device
events: what the gateway's registry and road health's device records follow."""

from __future__ import annotations

from typing import Any


def device_block(height: int, *events: tuple[str, str]) -> dict[str, Any]:
    """Block `height` with one (event name, device id) event each."""
    return {
        "type": "block",
        "height": height,
        "events": [
            {"contract": "roadhealth", "name": name, "data": {"device": device}}
            for name, device in events
        ],
    }
