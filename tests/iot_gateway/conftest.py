"""Fixtures for the gateway: a broker, the suite with the real road-health service, helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import create_engine, text

from chain.db import node_database_url
from chain.home import SuiteHome
from chain.suites import SuiteKey
from iot_gateway.broker import AmqttBroker, LocalBroker, MosquittoProcess
from iot_gateway.forwarder import ForwardSettings
from iot_gateway.gateway import Gateway, GatewaySettings
from iot_gateway.simulator import Network
from iot_gateway.source import BrokerAddress, new_client
from services.common.ledger import EmbeddedLedger, call
from smartcity.registry import ROADHEALTH
from smartcity.suite import open_suite


def start_private_broker(folder: Path) -> LocalBroker:
    """A broker of our own: the embedded one if amqtt is installed, else a private mosquitto."""
    try:
        import amqtt  # noqa: F401
    except ImportError:
        broker: LocalBroker = MosquittoProcess(folder=folder)
    else:
        broker = AmqttBroker()
    broker.start()
    return broker


BACKENDS = ["sqlite"] + (
    ["postgresql"] if os.environ.get("SMARTCITY_DATABASE_URL", "").startswith("postgresql") else []
)


@pytest.fixture(params=BACKENDS)
def outbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh outbox database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    base = os.environ["SMARTCITY_DATABASE_URL"]
    name = f"gw_{uuid.uuid4().hex[:10]}"
    yield node_database_url(base, name)
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS chain_{name} CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Mosquitto at SMARTCITY_MQTT_URL when reachable, else a broker started for the session."""
    url = os.environ.get("SMARTCITY_MQTT_URL")
    if url and BrokerAddress.parse(url).reachable():
        yield url
        return
    broker = start_private_broker(tmp_path_factory.mktemp("broker"))
    yield broker.url
    broker.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker this test may stop and restart (never the shared Mosquitto)."""
    broker = start_private_broker(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def city() -> str:
    """A city name no other test uses, so parallel tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass
class SuiteUnderTest:
    data: Path
    url: str
    ledger: EmbeddedLedger
    road_key: SuiteKey
    operator_key: SuiteKey

    @property
    def roadhealth_url(self) -> str:
        return f"{self.url}/roadhealth"

    def register(self, network: Network) -> None:
        """The road authority registers every simulated device on the chain."""
        for device in network.devices:
            receipt = call(
                self.ledger,
                self.road_key,
                "roadhealth",
                "register_device",
                {
                    "device": device.id,
                    "pub_key": device.key.public_hex,
                    "vehicle_class": device.vehicle_class,
                },
            )
            assert receipt["status"] == "ok", receipt

    def suspend(self, device: str) -> None:
        receipt = call(
            self.ledger, self.road_key, "roadhealth", "suspend_device", {"device": device}
        )
        assert receipt["status"] == "ok", receipt


@pytest.fixture
def suite(tmp_path: Path, live_server: Any) -> Iterator[SuiteUnderTest]:
    """The chain and the real road-health service, served over HTTP."""
    running = open_suite(tmp_path / "data", services=[ROADHEALTH])
    with live_server(running.app) as server:
        home = SuiteHome(tmp_path / "data")
        yield SuiteUnderTest(
            data=tmp_path / "data",
            url=server.url,
            ledger=EmbeddedLedger(running.node),
            road_key=home.org_key("road-authority"),
            operator_key=home.org_key("bsn-operator"),
        )


def gateway_settings(
    suite: SuiteUnderTest, broker_url: str, city: str, outbox: Path, **overrides: Any
) -> GatewaySettings:
    forward = overrides.pop("forward", None) or ForwardSettings(
        roadhealth_url=suite.roadhealth_url,
        operator_org="bsn-operator",
        operator_key=suite.operator_key,
        batch_wait_s=0.05,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
    )
    return GatewaySettings(
        broker_url=broker_url,
        outbox_url=f"sqlite:///{outbox}",
        forward=forward,
        instance=f"gw-{city}-{overrides.pop('n', 0)}",
        group=f"g-{city}",
        topic=f"city/{city}/road/+/sensor/+/telemetry/#",
        session_expiry_s=120,
        **overrides,
    )


@pytest.fixture
def start_gateway() -> Iterator[Callable[[GatewaySettings, Any], Gateway]]:
    started: list[Gateway] = []

    def start(settings: GatewaySettings, ledger: Any) -> Gateway:
        gateway = Gateway(settings, ledger=ledger)
        gateway.start()
        assert gateway.source.wait_connected(10), "gateway did not connect to the broker"
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@dataclass
class Collector:
    """A plain subscriber that keeps everything it receives on a topic filter."""

    client: mqtt.Client
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for _, p in self.messages]

    def wait_for(self, n: int, timeout_s: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    break
            time.sleep(0.05)
        return self.json()


@pytest.fixture
def collect(mqtt_url: str) -> Iterator[Callable[[str], Collector]]:
    clients: list[mqtt.Client] = []

    def make(topic_filter: str) -> Collector:
        address = BrokerAddress.parse(mqtt_url)
        client = new_client(address, f"c-{uuid.uuid4().hex[:8]}", "3.1.1", persistent=False)
        collector = Collector(client)
        subscribed = threading.Event()

        def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
            with collector.lock:
                collector.messages.append((m.topic, bytes(m.payload)))

        client.on_message = on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(address.host, address.port)
        client.loop_start()
        client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(10)
        clients.append(client)
        return collector

    yield make
    for client in clients:
        client.loop_stop()
        client.disconnect()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


REPO = Path(__file__).resolve().parents[2]


def spawn_gateway(
    suite: SuiteUnderTest,
    mqtt_url: str,
    city: str,
    outbox_url: str,
    ready: Path,
    instance: str | None = None,
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """A gateway process (`smartcity gateway run`) of the test's city; `extra`: more options."""
    ready.unlink(missing_ok=True)
    options = {
        "--data": str(suite.data),
        "--broker": mqtt_url,
        "--roadhealth": suite.roadhealth_url,
        "--chain": f"{suite.url}/chain",
        "--outbox": outbox_url,
        "--instance": instance or f"gw-{city}",
        "--group": f"g-{city}",
        "--topic": f"city/{city}/road/+/sensor/+/telemetry/#",
        "--session-expiry": "120",
        "--batch-max": "50",
        "--batch-wait": "0.05",
        "--ready-file": str(ready),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "smartcity", "gateway", "run"]
        + [part for pair in options.items() for part in pair]
        + list(extra),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def wait_ready(process: subprocess.Popen[bytes], ready: Path, timeout_s: float = 30) -> str:
    """The health URL of a spawned gateway once /readyz answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text():
            url = ready.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "exited")
        time.sleep(0.05)
    raise AssertionError("gateway did not become healthy")


@pytest.fixture
def gw() -> Any:
    """Helpers tests call: settings(...), wait_until(...), spawn(...) and wait_ready(...)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        settings=gateway_settings, wait_until=wait_until, spawn=spawn_gateway, wait_ready=wait_ready
    )
