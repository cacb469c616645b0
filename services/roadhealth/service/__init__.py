"""The road-health domain, one module per feature: segments, ingestion, segment condition,
potholes, the map, maintenance priorities, alerts, devices and proofs.

Functions take the service runtime and, where they need one, the request's DB session (one
transaction per request), and raise the package's errors. Chain writes come first (attested
with the operator's key, see chain.py), DB rows after, in the request's one transaction. The
pure algorithms they call live in `assessment/` (windows, condition classes, pothole clusters),
`network/` (GeoJSON, map matching, headings) and `analytics/` (IRI, shocks, classifiers).

    common       the day, a segment's row, the potholes by segment
    segments     import a network (on the chain), the demo network, the index, a segment's series
    ingest       the gateway's anchored batches, checked in docs/roadhealth-ingest.md's order
    placement    where a batch's windows lie: stored, headed and matched to segments
    locks        the row locks that let several processes share one database
    conditions   a segment's IRI and its class (sustained changes only), attested on the chain
    potholes     reports grouped into potholes, confirmed on the chain
    repairs      potholes passed without a report closed, repairs anchored on the chain
    maps         segments and potholes as GeoJSON
    priorities   segments ranked for repair
    alerts       raised with their data, listed, delivered to webhooks and MQTT
    devices      the device registry the road authority runs
    proofs       a reading from its device's signature to a committed block
"""

from __future__ import annotations

from services.roadhealth.service.alerts import AlertDispatcher as AlertDispatcher
from services.roadhealth.service.alerts import add_webhook as add_webhook
from services.roadhealth.service.alerts import list_alerts as list_alerts
from services.roadhealth.service.alerts import list_webhooks as list_webhooks
from services.roadhealth.service.alerts import raise_alert as raise_alert
from services.roadhealth.service.conditions import judge_segment as judge_segment
from services.roadhealth.service.conditions import refresh_segments as refresh_segments
from services.roadhealth.service.devices import get_device as get_device
from services.roadhealth.service.devices import list_devices as list_devices
from services.roadhealth.service.devices import submit_device_tx as submit_device_tx
from services.roadhealth.service.ingest import ingest_batch as ingest_batch
from services.roadhealth.service.maps import potholes_geojson as potholes_geojson
from services.roadhealth.service.maps import segment_geojson as segment_geojson
from services.roadhealth.service.maps import segments_geojson as segments_geojson
from services.roadhealth.service.potholes import confirm_grown as confirm_grown
from services.roadhealth.service.potholes import refresh_potholes as refresh_potholes
from services.roadhealth.service.priorities import priorities as priorities
from services.roadhealth.service.proofs import reading_proof as reading_proof
from services.roadhealth.service.segments import import_segments as import_segments
from services.roadhealth.service.segments import load_demo_network as load_demo_network
from services.roadhealth.service.segments import reload_index as reload_index
from services.roadhealth.service.segments import segment_series as segment_series
