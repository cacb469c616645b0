"""The fleet simulator: road sensors on simulated vehicles, known roads in, signed telemetry out.

Each segment is an ISO 8608 profile (roughness set by a target IRI) with potholes and bumps at
known places; each vehicle is a quarter-car of its class (services.roadhealth.analytics) driven
over it at its own speed, so the body acceleration it reports is what a body-mounted sensor
would record (with `cabin`, potholes and bumps shaped as phones on real roads record them,
services/roadhealth/analytics/response.py), plus sensor noise; positions carry GPS jitter. The
truth (each segment's IRI and class, each anomaly's position) is kept for scoring.

One simulator, two ways to drive it:

- `Fleet` over a `Network` (`build_network`): every device drives its route round and round,
  its windows signed and interleaved for MQTT, with planted faults if asked — what
  `smartcity up --simulate` publishes (messages.py, streams.py, network.py);
- `PassFleet` over a road-health `SegmentIndex`: chosen passes over planned segments, batched
  and anchored as the gateway anchors them (`ingest_body`) — for tests and benches (passes.py).

Both cut rides into windows, jitter positions and lay road surfaces with the same code
(roads.py).
"""

from iot_gateway.simulator.messages import BAD_KINDS, Fleet, Outgoing, encode_payload, make_bad
from iot_gateway.simulator.network import (
    Network,
    SimDevice,
    build_network,
    device_key,
    write_truth,
)
from iot_gateway.simulator.passes import (
    PassFleet,
    SegmentTruth,
    Vehicle,
    anchor_batch,
    build_batch,
    ingest_body,
)
from iot_gateway.simulator.roads import Segment, default_geojson_path
from iot_gateway.simulator.streams import DeviceStream, Window

__all__ = [
    "BAD_KINDS",
    "DeviceStream",
    "Fleet",
    "Network",
    "Outgoing",
    "PassFleet",
    "Segment",
    "SegmentTruth",
    "SimDevice",
    "Vehicle",
    "Window",
    "anchor_batch",
    "build_batch",
    "build_network",
    "default_geojson_path",
    "device_key",
    "encode_payload",
    "ingest_body",
    "make_bad",
    "write_truth",
]
