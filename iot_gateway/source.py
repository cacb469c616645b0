"""The MQTT side (paho-mqtt 2.x): connect, subscribe, hand messages over, acknowledge on request.

MQTT 5 brokers get a shared subscription ($share/<group>/...) so gateway processes split the
stream; a broker that refuses MQTT 5 (amqtt, older Mosquitto) gets MQTT 3.1.1 and a plain
subscription. The session is persistent (fixed client id, no clean start), so what the broker
sent and the gateway did not acknowledge is sent again after a crash or a reconnect.
Acknowledgements are manual: the gateway acks only after the message is in its outbox.
"""

from __future__ import annotations

import logging
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chain.secretfile import SecretError, fill_password
from iot_gateway.errors import BrokerError, ConfigError

log = logging.getLogger(__name__)
_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id
_UINT16 = struct.Struct("!H")

Protocol = Literal["auto", "5", "3.1.1"]
SESSION_EXPIRY_S = 24 * 3600


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """mqtt://[user[:password]@]host[:port]; `{password}` from SMARTCITY_MQTT_PASSWORD_FILE."""
        try:
            url = fill_password(
                url, url_name="the broker URL", file_variable="SMARTCITY_MQTT_PASSWORD_FILE"
            )
        except SecretError as exc:
            raise ConfigError(str(exc)) from exc
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ConfigError(f"broker URL must look like mqtt://host:port, got {url!r}")
        return cls(
            parts.hostname,
            parts.port or 1883,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    def reachable(self, timeout_s: float = 1.0) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout_s):
                return True
        except OSError:
            return False


class Delivery(NamedTuple):
    """One message from the broker, with what is needed to acknowledge it later (a tuple: paho's
    thread makes one per message, three times faster than a frozen dataclass)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # which connection delivered it: acks never cross a reconnect
    received_at: float


class BufferedClient(mqtt.Client):
    """paho's client, reading the socket READ_BYTES at a time.

    paho reads a packet with three or more recv calls (its first byte, each byte of its length,
    its body) and waits in select before each packet: four system calls per message, each
    letting go of the GIL and waiting to take it back behind the gateway's other threads.
    Here one recv fills a buffer that the next packets' fields are cut from, and select, which
    cannot see what is buffered, is only waited in once the buffer is empty."""

    READ_BYTES = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_delivery: Callable[[str, bytes, int, int], None] | None = None
        self._in_buffer = b""
        self._in_at = 0
        self._in_socket: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._in_socket is not self._sock:  # a new connection: nothing buffered is its own
            self._in_buffer, self._in_at, self._in_socket = b"", 0, self._sock
        if self._in_at >= len(self._in_buffer):
            data = super()._sock_recv(self.READ_BYTES)  # BlockingIOError when there is none
            if not data:
                return data  # the broker closed the connection
            self._in_buffer, self._in_at = data, 0
        start = self._in_at
        self._in_at = min(start + bufsize, len(self._in_buffer))
        return self._in_buffer[start : self._in_at]

    def _handle_publish(self) -> MQTTErrorCode:
        """A QoS 1 PUBLISH handed to `on_delivery` as (topic, payload, packet id, QoS): paho
        builds a message object, unpacks its MQTT 5 properties into another and formats a
        log line first, a fifth of its time per message. Anything else (other QoS, no
        `on_delivery`, a packet that does not parse here) takes paho's own way."""
        deliver = self.on_delivery
        header = self._in_packet["command"]
        if deliver is None or not self._manual_ack or (header & 0x06) != 0x02:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        try:
            (length,) = _UINT16.unpack_from(packet)
            topic = bytes(packet[2 : 2 + length]).decode("utf-8")
            (mid,) = _UINT16.unpack_from(packet, 2 + length)
            at = 4 + length
            if self._protocol == mqtt.MQTTv5:
                at = _skip_properties(packet, at)
        except (struct.error, UnicodeDecodeError, IndexError):
            return super()._handle_publish()  # paho's errors for a malformed packet
        if not topic:  # MQTT 3.1.1 forbids it; MQTT 5 would need a topic alias
            return super()._handle_publish()
        deliver(topic, bytes(packet[at:]), mid, 1)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages (manual acks) with one write: paho's ack queues a packet
        per message and wakes the network thread with a system call for each, which then
        sends each in a system call of its own. A PUBACK is the same four bytes in MQTT 3.1.1
        and 5 (success needs no reason code); written together they are one queued packet."""
        if mids:
            packet = b"".join(_PUBACK.pack(PUBACK, 2, mid) for mid in mids)
            self._packet_queue(PUBACK, packet, 0, 1)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._sock is not None
            and self._in_socket is self._sock
            and self._in_at < len(self._in_buffer)
        ):
            rc = super().loop_read(max_packets)
        return rc


def _skip_properties(packet: bytes | bytearray, at: int) -> int:
    """Where the payload starts after the MQTT 5 properties at `at` (a variable byte integer
    length, then that many bytes)."""
    length, shift = 0, 0
    for used in range(4):
        byte = packet[at + used]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            end = at + used + 1 + length
            if end > len(packet):
                raise IndexError("properties run past the packet")
            return end
    raise IndexError("a property length longer than four bytes")


def new_client(
    address: BrokerAddress, client_id: str, protocol: Literal["5", "3.1.1"], *, persistent: bool
) -> mqtt.Client:
    """A paho client for the address; persistent sessions keep unacknowledged messages."""
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
        clean_session=None if protocol == "5" else not persistent,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    client.reconnect_delay_set(min_delay=1, max_delay=4)
    return client


def connect_properties(*, session_expiry_s: int, receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if session_expiry_s:
        props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = receive_maximum
    return props


def detect_protocol(address: BrokerAddress, timeout_s: float = 3.0) -> Literal["5", "3.1.1"]:
    """MQTT 5 if the broker accepts an MQTT 5 connection, else 3.1.1."""
    result: dict[str, bool] = {}
    done = threading.Event()
    probe = new_client(address, "", "5", persistent=False)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result["ok"] = not reason.is_failure
        done.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        done.set()

    probe.on_connect = on_connect
    probe.on_disconnect = on_disconnect
    try:
        probe.connect(address.host, address.port, keepalive=10, clean_start=True)
    except OSError as exc:
        raise BrokerError(f"broker {address.host}:{address.port} unreachable: {exc}") from exc
    probe.loop_start()
    done.wait(timeout_s)
    probe.loop_stop()
    probe.disconnect()
    return "5" if result.get("ok") else "3.1.1"


class MqttSource:
    """A subscription feeding a bounded queue of deliveries, reconnecting by itself."""

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        topic: str,
        group: str | None,
        protocol: Protocol = "auto",
        receive_maximum: int = 10_000,
        qos: int = 1,
        session_expiry_s: int = SESSION_EXPIRY_S,
    ) -> None:
        self.session_expiry_s = session_expiry_s
        self.address = address
        self.client_id = client_id
        self.topic = topic
        self.group = group
        self.requested = protocol
        self.receive_maximum = receive_maximum
        self.qos = qos
        self.protocol: Literal["5", "3.1.1"] | None = None
        # A SimpleQueue: put and get cost a tenth of queue.Queue's lock and conditions, a
        # thirtieth of a message's path. Under MQTT 5 it never holds more than the broker's
        # in-flight window; past `max_queued` (a broker that ignores the window, or MQTT 3.1.1)
        # the network thread waits for the intake, as a bounded queue's put would
        self.deliveries: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self.max_queued = max(receive_maximum, 1000)
        self.connected = threading.Event()
        self.generation = 0
        self.connects = 0
        self._stopping = False
        self._client: mqtt.Client | None = None

    @property
    def subscription(self) -> str:
        """The topic filter actually subscribed: shared under MQTT 5 when a group is set."""
        if self.protocol == "5" and self.group:
            return f"$share/{self.group}/{self.topic}"
        return self.topic

    def start(self) -> None:
        self.protocol = (
            detect_protocol(self.address) if self.requested == "auto" else self.requested
        )
        client = new_client(self.address, self.client_id, self.protocol, persistent=True)
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if isinstance(client, BufferedClient):
            client.on_delivery = self._on_delivery
        self._client = client
        kwargs: dict[str, Any] = {}
        if self.protocol == "5":
            kwargs["clean_start"] = False
            kwargs["properties"] = connect_properties(
                session_expiry_s=self.session_expiry_s, receive_maximum=self.receive_maximum
            )
        try:
            client.connect_async(self.address.host, self.address.port, keepalive=15, **kwargs)
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot connect to {self.address.host}: {exc}") from exc
        client.loop_start()
        log.info(
            "gateway %s subscribing to %s over MQTT %s",
            self.client_id,
            self.subscription,
            self.protocol,
        )

    def stop(self) -> None:
        self._stopping = True
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge the deliveries that the current connection brought (the broker sends the
        others again; the outbox will recognise them), QoS 1 ones in one write."""
        client = self._client
        if client is None:
            return
        current = [d for d in deliveries if d.generation == self.generation]
        if isinstance(client, BufferedClient):
            client.ack_many([d.mid for d in current if d.qos == 1])
            current = [d for d in current if d.qos != 1]
        for delivery in current:
            client.ack(delivery.mid, delivery.qos)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        if self._client is None:
            raise BrokerError("not started")
        return self._client.publish(topic, payload, qos=qos)

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("broker refused the gateway: %s", reason)
            return
        self.generation += 1
        self.connects += 1
        client.subscribe(self.subscription, qos=self.qos)
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if self._stopping:
            log.info("gateway %s disconnected from the broker", self.client_id)
        else:
            log.warning("gateway %s disconnected (%s); reconnecting", self.client_id, reason)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._on_delivery(message.topic, bytes(message.payload), message.mid, message.qos)

    def _on_delivery(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        deliveries = self.deliveries
        while deliveries.qsize() >= self.max_queued and not self._stopping:
            time.sleep(0.01)
        deliveries.put(Delivery(topic, payload, mid, qos, self.generation, time.time()))
