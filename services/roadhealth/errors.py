"""The road-health service's errors, all under one root.

RoadHealthError (ServiceError, 400)
├── BadGeoJson            422 malformed_geojson
├── UnknownSegment        404 unknown_segment
├── UnknownReading        404 unknown_reading
├── UnknownDevice         404 unknown_device
├── BadBatch              422 bad_batch / hash_mismatch / root_mismatch / anchor_mismatch
├── AnchorNotCommitted    409 anchor_not_committed
├── BatchConflict         409 batch_conflict / batch_in_progress
├── BadDeviceTx           422 bad_device_tx (a registration tx the service will not relay)
└── OutOfRange            422 out_of_range

ChainRefused (409, the chain failed the transaction: its own code) is the services' shared one
(services.common.errors), re-exported here.
"""

from __future__ import annotations

from services.common.errors import ChainRefused as ChainRefused  # shared, re-exported
from services.common.errors import Conflict, NotFound, ServiceError, Unprocessable


class RoadHealthError(ServiceError):
    """Root of the service's errors."""


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
