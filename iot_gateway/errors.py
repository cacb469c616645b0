"""The gateway's errors.

GatewayError
 ├── Rejected        a message refused by a check; carries a reason code for the dead-letter topic
 ├── ConfigError     settings the gateway cannot run with
 ├── BrokerError     the MQTT broker refused or could not be reached (paho errors end here)
 ├── ForwardError    road-health or the chain refused a batch (httpx and chain errors end here)
 └── OutboxError     the outbox database failed (iot_gateway.outbox; SQLAlchemy errors end here)
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's errors."""


class Rejected(GatewayError):
    """A message that failed a check; `code` names the check (see REASONS)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ConfigError(GatewayError):
    """Settings the gateway cannot run with."""


class BrokerError(GatewayError):
    """The broker refused the gateway or could not be reached."""


class ForwardError(GatewayError):
    """A batch could not be anchored or forwarded; `retry` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


# Reason codes of rejects, in the order the checks run
REASONS = (
    "too_large",
    "bad_topic",
    "not_json",
    "not_cbor",
    "bad_schema",
    "topic_mismatch",
    "unknown_device",
    "device_suspended",
    "bad_signature",
    "clock_skew",
    "out_of_range",
    "replayed_seq",
    "check_failed",  # a check raised an error of its own (a gateway bug): kept, not retried
)
