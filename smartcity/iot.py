"""The IoT side of `smartcity up`: a broker, the gateway, and simulated road sensors on request.

`start_iot(suite, simulate=...)` uses the broker at SMARTCITY_MQTT_URL (default
mqtt://127.0.0.1:1883, where Mosquitto listens) when one answers, else starts the embedded
broker (amqtt) on a free loopback port. It runs one gateway in
threads of this process: it reads device keys from and anchors on the suite's chain
(validator-0), stores its outbox in DATA/gateway/outbox.db and forwards batches to road-health
over HTTP as `bsn-operator`. With `simulate`, vehicles of the road-health demo network publish
signed telemetry at a few messages per second, after the road authority has registered them on
the chain (`roadhealth.register_device` signed by its own key, handed to road-health's
`POST /v1/devices/tx`, docs/roadhealth.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chain.auth import mint_token
from chain.home import SuiteHome
from chain.suites import SuiteKey
from chain.tx import sign_tx
from iot_gateway.broker import AmqttBroker, free_port, start_embedded_broker
from iot_gateway.forwarder import ForwardSettings
from iot_gateway.gateway import Gateway, GatewaySettings
from iot_gateway.publisher import connect_publisher, publish_fleet
from iot_gateway.simulator import (
    Fleet,
    Network,
    build_network,
    default_geojson_path,
    write_truth,
)
from iot_gateway.simulator.messages import with_suite_keys
from iot_gateway.source import BrokerAddress
from services.common.ledger import DEFAULT_TTL_BLOCKS, EmbeddedLedger, LedgerPort
from smartcity.demo import OPERATOR_ORG
from smartcity.logs import redact
from smartcity.suite import Suite

log = logging.getLogger(__name__)

ROAD_AUTHORITY_ORG = "road-authority"
DEFAULT_CITY = "smartcity"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"
SIM_DEVICES = 4
SIM_RATE_PER_S = 4.0
SIM_SEED = 0
# Road-health estimates IRI from windows of 2 s and more (docs/roadhealth.md): 4 s windows
SIM_WINDOW_S = 4.0
# Planted anomalies cycled over the demo segments: about one pothole per segment, a few bumps
SIM_POTHOLES = (1, 0, 2)
SIM_BUMPS = (1, 0, 0, 0)
SIM_ANOMALY_MARGIN_M = 30.0
SIM_ANOMALY_GAP_M = 40.0
TRUTH_FILE = "simulator-truth.json"


def _broker() -> tuple[str, AmqttBroker | None]:
    """The broker at SMARTCITY_MQTT_URL (default mqtt://127.0.0.1:1883) if one answers there,
    else an embedded broker of our own on a free loopback port.

    The embedded broker never takes 1883, so what answers at the default address is a broker
    someone runs (Mosquitto), never another suite's embedded one that may stop at any time.
    """
    url = os.environ.get("SMARTCITY_MQTT_URL") or DEFAULT_MQTT_URL
    if BrokerAddress.parse(url).reachable():
        log.info("using the MQTT broker at %s", redact(url))
        return url, None
    log.warning("no MQTT broker answers at %s; starting the embedded one", redact(url))
    broker = start_embedded_broker(free_port())
    return broker.url, broker


def register_devices(
    ledger: LedgerPort,
    road_key: SuiteKey,
    network: Network,
    roadhealth_url: str,
    *,
    stop: threading.Event,
    timeout_s: float = 120.0,
) -> list[str]:
    """The road authority registers each simulated device not yet on the chain; returns ids.

    Each is a `roadhealth.register_device` transaction signed by the road authority's key,
    handed to road-health's `POST /v1/devices/tx` (which submits it and lists the device),
    retried while the suite's HTTP server is not listening yet.
    """
    registered = []
    token = mint_token(road_key, org=ROAD_AUTHORITY_ORG, audience="roadhealth", ttl_s=600)
    deadline = time.monotonic() + timeout_s
    with httpx.Client(
        base_url=roadhealth_url, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for device in network.devices:
            record = ledger.read("roadhealth", f"device:{device.id}")
            if record is not None:
                if record.get("pub_key") != device.key.public_hex:
                    log.warning("device %s is registered with another key", device.id)
                continue
            tx = sign_tx(
                road_key,
                chain_id=ledger.genesis.chain_id,
                contract="roadhealth",
                method="register_device",
                args={
                    "device": device.id,
                    "pub_key": device.key.public_hex,
                    "vehicle_class": device.vehicle_class,
                },
                expiry_height=ledger.height() + DEFAULT_TTL_BLOCKS,
            )
            while True:
                try:
                    response = http.post("/v1/devices/tx", json={"tx": tx.to_json()})
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or stop.wait(0.5):
                        raise
            if response.status_code != 200:
                log.warning("registering %s: %s %s", device.id, response.status_code, response.text)
                continue
            registered.append(device.id)
    return registered


@dataclass
class Simulator:
    """Simulated vehicles publishing in a thread until stopped, seqs continuing across runs."""

    network: Network
    broker_url: str
    ledger: LedgerPort
    road_key: SuiteKey
    gateway: Gateway
    state_path: Path
    roadhealth_url: str
    rate_per_s: float = SIM_RATE_PER_S
    window_s: float = SIM_WINDOW_S
    fleet: Fleet = field(init=False)
    error: BaseException | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.network, seed=SIM_SEED, window_s=self.window_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="iot-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._save_seqs()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _continue_seqs(self) -> None:
        """Start after the highest seq the gateway stored or this simulator sent before."""
        saved: dict[str, int] = {}
        if self.state_path.is_file():
            saved = {str(k): int(v) for k, v in json.loads(self.state_path.read_text()).items()}
        stored = self.gateway.outbox.last_seqs()
        for stream in self.fleet.streams:
            device = stream.device.id
            stream.seq = max(saved.get(device, 0), stored.get(device, 0))

    def _save_seqs(self) -> None:
        seqs = {s.device.id: s.seq for s in self.fleet.streams}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(seqs))
        tmp.replace(self.state_path)

    def _run(self) -> None:
        try:
            register_devices(
                self.ledger,
                self.road_key,
                self.network,
                self.roadhealth_url,
                stop=self.stop_event,
            )
            self._continue_seqs()
            # Publish once the gateway's subscription is in place, or messages would be lost
            while not self.gateway.source.wait_connected(1.0):
                if self.stop_event.is_set():
                    return
            client = connect_publisher(self.broker_url, f"sim-{self.gateway.settings.instance}")
            try:
                while not self.stop_event.is_set():
                    publish_fleet(client, self.fleet, duration_s=1.0, rate_per_s=self.rate_per_s)
                    self._save_seqs()
            finally:
                client.loop_stop()
                client.disconnect()
        except Exception as exc:  # the suite keeps running without its simulated sensors
            self.error = exc
            log.exception("the sensor simulator stopped")


@dataclass
class IotHandle:
    """What start_iot started; stop() ends it in order (sensors, gateway, broker)."""

    city: str
    broker_url: str
    gateway: Gateway
    embedded_broker: AmqttBroker | None = None
    simulator: Simulator | None = None

    @property
    def health_url(self) -> str | None:
        return self.gateway.health.url if self.gateway.health is not None else None

    def stop(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()
        self.gateway.stop()
        if self.embedded_broker is not None:
            self.embedded_broker.close()


def demo_network(*, city: str, seed: int, n_devices: int, n_segments: int = 10_000) -> Network:
    """The simulator's vehicles on the demo road network with `make up`'s planted anomalies."""
    return build_network(
        city=city,
        seed=seed,
        n_devices=n_devices,
        n_segments=n_segments,  # the default takes every segment of the demo network
        geojson=json.loads(default_geojson_path().read_text()),
        potholes_per_segment=SIM_POTHOLES,
        bumps_per_segment=SIM_BUMPS,
        anomaly_margin_m=SIM_ANOMALY_MARGIN_M,
        anomaly_gap_m=SIM_ANOMALY_GAP_M,
    )


def planted_potholes(network: Network) -> list[tuple[str, float]]:
    """(segment, position along it in m) of every pothole the simulator planted."""
    return [
        (s.id, a.position_m)
        for s in network.segments
        for a in s.profile.anomalies
        if a.kind == "pothole"
    ]


def start_iot(
    suite: Suite,
    *,
    simulate: bool,
    base_url: str | None = None,
    city: str | None = None,
    sim_rate_per_s: float = SIM_RATE_PER_S,
    sim_devices: int = SIM_DEVICES,
) -> IotHandle:
    """Start the broker (if needed), the gateway and, with `simulate`, the sensor simulator.

    `base_url` is where the suite is served (default: the API URL written at `smartcity init`,
    without /chain); `city` names the telemetry topics (default SMARTCITY_CITY or "smartcity").
    The simulator's `sim_devices` vehicles publish `sim_rate_per_s` windows per second in all,
    and the ground truth they drive on (each segment's IRI and class, each planted pothole and
    bump) is written to DATA/gateway/simulator-truth.json for scoring.
    """
    home = SuiteHome(suite.data)
    base = (base_url or home.api_url().removesuffix("/chain")).rstrip("/")
    city = city or os.environ.get("SMARTCITY_CITY") or DEFAULT_CITY
    folder = suite.data / "gateway"
    folder.mkdir(parents=True, exist_ok=True)
    # Stable across restarts (the broker keeps the session by client id), distinct per suite
    tag = suite.node.ledger.genesis.hash[:12]
    ledger = EmbeddedLedger(suite.node)
    broker_url, embedded = _broker()
    settings = GatewaySettings(
        broker_url=broker_url,
        outbox_url=f"sqlite:///{folder / 'outbox.db'}",
        instance=f"gateway-{tag}",
        group=f"iot-gateway-{tag}",
        topic=f"city/{city}/road/+/sensor/+/telemetry/#",
        forward=ForwardSettings(
            roadhealth_url=f"{base}/roadhealth",
            operator_org=OPERATOR_ORG,
            operator_key=home.org_key(OPERATOR_ORG),
        ),
    )
    try:
        gateway = Gateway(settings, ledger=ledger)
        gateway.start()
    except Exception:
        if embedded is not None:
            embedded.close()
        raise
    handle = IotHandle(city=city, broker_url=broker_url, gateway=gateway, embedded_broker=embedded)
    log.info(
        "IoT gateway on %s (%s broker), health %s",
        broker_url,
        "embedded" if embedded else "external",
        handle.health_url,
    )
    if simulate:
        network = demo_network(city=city, seed=SIM_SEED, n_devices=sim_devices)
        network = with_suite_keys(network, ledger.genesis.crypto)
        write_truth(network, folder / TRUTH_FILE)
        handle.simulator = Simulator(
            network=network,
            broker_url=broker_url,
            ledger=ledger,
            road_key=home.org_key(ROAD_AUTHORITY_ORG),
            gateway=gateway,
            state_path=folder / "simulator.json",
            roadhealth_url=f"{base}/roadhealth",
            rate_per_s=sim_rate_per_s,
        )
        handle.simulator.start()
    return handle
