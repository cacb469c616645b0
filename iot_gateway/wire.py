"""The telemetry wire contract as the gateway uses it: re-exported from services.roadhealth.wire.

The format lives once, in `services.roadhealth.wire` (the gateway sits above the services and may
import it; road health may not import the gateway). This module keeps the gateway's own import
path for the names it uses.
"""

from __future__ import annotations

from services.roadhealth.wire import (
    ENCODINGS,
    ID_PATTERN,
    PAYLOAD_FIELDS,
    TELEMETRY_QOS,
    TOPIC_PATTERN,
    CborInvalid,
    Encoding,
    TelemetryTopic,
    canonical_json,
    canonical_pair,
    decode_cbor,
    dlq_topic,
    encode_cbor,
    is_valid_id,
    message_hash,
    parse_topic,
    sign_payload,
    signing_bytes,
    telemetry_filter,
    telemetry_topic,
)

__all__ = [
    "ENCODINGS",
    "ID_PATTERN",
    "PAYLOAD_FIELDS",
    "TELEMETRY_QOS",
    "TOPIC_PATTERN",
    "CborInvalid",
    "Encoding",
    "TelemetryTopic",
    "canonical_json",
    "canonical_pair",
    "decode_cbor",
    "dlq_topic",
    "encode_cbor",
    "is_valid_id",
    "message_hash",
    "parse_topic",
    "sign_payload",
    "signing_bytes",
    "telemetry_filter",
    "telemetry_topic",
]
