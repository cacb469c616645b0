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
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chain.secretfile import SecretError, fill_password
from iot_gateway.errors import BrokerError, ConfigError

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Delivery:
    """One message from the broker, with what is needed to acknowledge it later."""

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
        # Never fuller than the broker's in-flight window, so the network thread never blocks
        self.deliveries: queue.Queue[Delivery] = queue.Queue(maxsize=max(receive_maximum, 1000))
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

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a delivery if the connection that brought it is still the current one."""
        if self._client is None or delivery.generation != self.generation:
            return  # the broker will send it again; the outbox will recognise it
        self._client.ack(delivery.mid, delivery.qos)

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
        self.deliveries.put(
            Delivery(
                topic=message.topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                generation=self.generation,
                received_at=time.time(),
            )
        )
