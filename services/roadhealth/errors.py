"""The road-health package's errors, all under one root.

RoadHealthError (ServiceError, 400)
├── BadGeoJson            422 malformed_geojson
├── UnknownSegment        404 unknown_segment
├── UnknownReading        404 unknown_reading
├── UnknownDevice         404 unknown_device
├── BadBatch              422 bad_batch / hash_mismatch / root_mismatch / anchor_mismatch
├── AnchorNotCommitted    409 anchor_not_committed
├── BatchConflict         409 batch_conflict / batch_in_progress
├── BadDeviceTx           422 bad_device_tx (a registration tx the service will not relay)
├── OutOfRange            422 out_of_range
├── SettingsError         bad_settings: a setting the service cannot run on (runtime.py,
│                         raised when the settings are made, at start, never over HTTP)
├── WireError             422 a message outside the telemetry wire format (wire.py)
│   ├── PayloadInvalid        its `code` is the reason the sender sees (dead letter, reject)
│   └── CborInvalid           bytes that are not one well-formed CBOR item
└── AnalyticsError        500 analytics_error: input the pure algorithms cannot use; the
    │                     service checks what it passes them, so one reaching HTTP is a defect
    ├── ProfileError          analytics/profile.py: a road profile cannot be generated
    ├── ProfileInputError     analytics/iri.py: no IRI from this profile
    ├── UnknownVehicleClass   analytics/quartercar.py
    ├── WindowError           analytics/features.py: a window too short or not finite
    ├── KernelError           analytics/kernels.py
    ├── ClassifierError       analytics/anomaly.py: a classifier unusable or mis-trained
    ├── CalibrationError      analytics/roughness.py
    ├── DatasetError          analytics/dataset.py: a window folder that cannot be read
    └── ClusteringError       clustering.py

Each error is defined beside the code that raises it and imported from there; the wire and
analytics errors are also `ValueError`s, as they were before they joined the root.

ChainRefused (409, the chain failed the transaction: its own code) is the services' shared one
(services.common.errors), re-exported here.
"""

from __future__ import annotations

from services.common.errors import ChainRefused as ChainRefused  # shared, re-exported
from services.common.errors import Conflict, NotFound, ServiceError, Unprocessable


class RoadHealthError(ServiceError):
    """Root of the package's errors."""


class BadGeoJson(RoadHealthError, Unprocessable):
    code = "malformed_geojson"


class UnknownSegment(RoadHealthError, NotFound):
    code = "unknown_segment"


class UnknownReading(RoadHealthError, NotFound):
    code = "unknown_reading"


class UnknownDevice(RoadHealthError, NotFound):
    code = "unknown_device"


class BadBatch(RoadHealthError, Unprocessable):
    code = "bad_batch"


class AnchorNotCommitted(RoadHealthError, Conflict):
    code = "anchor_not_committed"


class BatchConflict(RoadHealthError, Conflict):
    code = "batch_conflict"


class BadDeviceTx(RoadHealthError, Unprocessable):
    code = "bad_device_tx"


class OutOfRange(RoadHealthError, Unprocessable):
    code = "out_of_range"


class WireError(RoadHealthError, Unprocessable, ValueError):
    """A message outside the telemetry wire format (services/roadhealth/wire.py)."""

    code = "malformed_payload"


class AnalyticsError(RoadHealthError, ValueError):
    """Input the pure algorithms (analytics/, clustering.py) cannot use."""

    status, code = 500, "analytics_error"
