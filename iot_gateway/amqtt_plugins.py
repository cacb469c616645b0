"""amqtt plugins that give a persistent session at-least-once QoS 1 delivery across a crash.

amqtt 0.12.1 out of the box loses QoS 1 messages for a persistent (clean_session=0) subscriber
that dies without a DISCONNECT (kill -9), in two independent ways:

1. `AnonymousAuthPlugin` with `allow_anonymous` marks *every* session `is_anonymous`, and the
   broker then neither queues messages for a disconnected anonymous session
   (`Broker._run_broadcast`) nor keeps the session itself (`Broker._session_monitor` deletes it,
   with its subscriptions, within a second). Everything published while the gateway restarts
   is dropped. `LoopbackAuthPlugin` accepts clients without marking them anonymous.
2. A PUBLISH sent to the subscriber and not yet acknowledged is removed from the session's
   `inflight_out` whether or not its PUBACK came (`ProtocolHandler._handle_qos1_message_flow`
   pops it in a `finally`): on disconnect the PUBACK waiter is cancelled, and after 5 s without
   a PUBACK it times out; either way the message is gone and never sent again, contrary to
   MQTT-4.4.0-1. `RedeliverUnacknowledged` gives each persistent session an `inflight_out`
   that puts a message removed without its PUBACK back on the session's queue of messages
   for its next connection, which the broker sends when the client reconnects.

Both rely on amqtt 0.12.1's internals (the version the project pins); tests/iot_gateway covers
them with a subscriber killed by SIGKILL.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from amqtt.contexts import BaseContext
from amqtt.mqtt.constants import QOS_1
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin
from amqtt.session import ApplicationMessage, OutgoingApplicationMessage, Session

_MISSING: Any = object()


class LoopbackAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped here
    """Accepts every client (the embedded broker listens on loopback only) as non-anonymous.

    Device authenticity is not the broker's job here: the gateway checks every message's
    Ed25519 signature against the key registered on the chain.
    """

    async def authenticate(self, *, session: Session) -> bool | None:
        return True


class _RequeueingInflight(OrderedDict[int, OutgoingApplicationMessage]):
    """A session's `inflight_out` that keeps what leaves it without an acknowledgement."""

    def __init__(self, session: Session, items: dict[int, OutgoingApplicationMessage]) -> None:
        super().__init__(items)
        self.session = session

    def pop(self, key: int, default: Any = _MISSING) -> Any:
        message = super().pop(key) if default is _MISSING else super().pop(key, default)
        if (
            isinstance(message, OutgoingApplicationMessage)
            and message.qos == QOS_1
            and message.puback_packet is None
            and not self.session.clean_session
        ):
            # Sent at the next connection; a copy the client did receive is a duplicate, which
            # at-least-once allows and the gateway's outbox recognises
            retry = ApplicationMessage(None, message.topic, QOS_1, message.data, retain=False)
            self.session.retained_messages.put_nowait(retry)
        return message


class RedeliverUnacknowledged(BasePlugin[BaseContext]):  # type: ignore[misc]
    """Installs `_RequeueingInflight` on each persistent session when its client connects."""

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        del client_id
        inflight = client_session.inflight_out
        if not client_session.clean_session and not isinstance(inflight, _RequeueingInflight):
            client_session.inflight_out = _RequeueingInflight(client_session, dict(inflight))


def broker_plugins() -> dict[str, dict[str, Any]]:
    """The `plugins` section of the embedded broker's configuration."""
    return {
        f"{__name__}.LoopbackAuthPlugin": {},
        f"{__name__}.RedeliverUnacknowledged": {},
    }
