"""IoT gateway throughput and latency through real Mosquitto at QoS 1, with the broker's ceiling.

One run: a suite (chain + road-health) in this process, N pre-signed telemetry windows published
as fast as possible. Results (JSON):
- ceiling: the rate at which a bare paho subscriber receives that stream from the same broker;
- e2e with 1 and 2 gateway processes (MQTT 5 shared subscription): messages per second from the
  first publish to the last message stored and anchored on the chain, and its ratio to the ceiling;
- the same with CBOR payloads (one gateway);
- forwarded: messages per second until road-health accepted the last batch (the service's own
  ingestion, on the same two cores, is then part of the figure);
- p50/p99 publish-to-stored latency at half the one-gateway rate; samples per second;
- CPU milliseconds per message of the gateway processes and of this process (chain, road-health,
  publisher) until the last message is anchored: what the rates cost, even on a busy machine;
- the machine's own Ed25519 ceiling (verifications per second on one core).
SMARTCITY_MQTT_URL picks the broker (default mqtt://127.0.0.1:1883).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import uvicorn
from sqlalchemy import create_engine, text

from bench._ceiling import ed25519_verifications_per_s
from chain.home import SuiteHome
from iot_gateway.broker import free_port
from iot_gateway.publisher import connect_publisher
from iot_gateway.simulator import Fleet, Outgoing, build_network
from iot_gateway.source import BrokerAddress, detect_protocol, new_client
from iot_gateway.wire import Encoding
from services.common.ledger import EmbeddedLedger, call
from smartcity.registry import ServiceEntry
from smartcity.suite import open_suite

MESSAGES = int(os.environ.get("BENCH_GATEWAY_MESSAGES", "6000"))
DEVICES = 40
REPO = Path(__file__).resolve().parents[1]


def _serve(app: Any) -> tuple[str, uvicorn.Server]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server


def _messages(fleet: Fleet, n: int) -> list[Outgoing]:
    now = time.time()
    return [fleet.next_message(now) for _ in range(n)]


def _publish(broker: str, messages: list[Outgoing], rate: float | None = None) -> list[float]:
    client = connect_publisher(broker, f"bench-pub-{uuid.uuid4().hex[:6]}")
    times: list[float] = []
    infos = []
    started = time.monotonic()
    for i, m in enumerate(messages):
        if rate:
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        times.append(time.time())
        infos.append(client.publish(m.topic, m.payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()
    return times


def _ceiling(broker: str, city: str, messages: list[Outgoing]) -> float:
    """Messages per second a bare QoS 1 subscriber receives of the same stream."""
    address = BrokerAddress.parse(broker)
    proto = detect_protocol(address)
    sub = new_client(address, f"bench-sub-{city}", proto, persistent=False)
    got: list[float] = []
    done = threading.Event()

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        got.append(time.time())
        if len(got) == len(messages):
            done.set()

    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(address.host, address.port)
    sub.loop_start()
    sub.subscribe(f"city/{city}/road/+/sensor/+/telemetry", qos=1)
    subscribed.wait(10)
    times = _publish(broker, messages)
    done.wait(120)
    sub.loop_stop()
    sub.disconnect()
    return len(got) / (got[-1] - times[0])


def _spawn(
    data: Path, url: str, broker: str, city: str, outbox: Path, n: int, group: str
) -> subprocess.Popen[bytes]:
    ready = outbox.with_suffix(".ready")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "iot_gateway",
            "gateway",
            "run",
            "--data",
            str(data),
            "--broker",
            broker,
            "--roadhealth",
            f"{url}/roadhealth",
            "--chain",
            f"{url}/chain",
            "--outbox",
            f"sqlite:///{outbox}",
            "--instance",
            f"{group}-{n}",
            "--group",
            group,
            "--topic",
            f"city/{city}/road/+/sensor/+/telemetry/#",
            "--session-expiry",
            "60",
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not ready.exists():
        time.sleep(0.05)
    time.sleep(0.5)
    return process


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _count(outboxes: list[Path], sql: str) -> int:
    total = 0
    for path in outboxes:
        engine = create_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            total += int(conn.execute(text(sql)).scalar_one())
        engine.dispose()
    return total


ANCHORED = (
    "SELECT count(*) FROM iot_gateway_messages m JOIN iot_gateway_batches b"
    " ON m.batch_id = b.id WHERE b.anchor_tx IS NOT NULL"
)
FORWARDED = "SELECT coalesce(sum(count), 0) FROM iot_gateway_batches WHERE state = 'forwarded'"


def _run_gateways(
    data: Path,
    url: str,
    broker: str,
    fleet: Fleet,
    gateways: int,
    work: Path,
    n: int,
    rate: float | None = None,
) -> dict[str, Any]:
    city = fleet.network.city
    group = f"bench-{uuid.uuid4().hex[:6]}"  # a fresh group: no offline member from a past run
    outboxes = [work / f"{group}-{i}.db" for i in range(gateways)]
    processes = [_spawn(data, url, broker, city, o, i, group) for i, o in enumerate(outboxes)]
    try:
        messages = _messages(fleet, n)
        gateway_cpu = sum(_cpu_s(p.pid) for p in processes)
        own_cpu = time.process_time()
        times = _publish(broker, messages, rate)
        deadline = time.time() + 300
        while _count(outboxes, ANCHORED) < n and time.time() < deadline:
            time.sleep(0.05)
        finished = time.time()
        gateway_cpu = sum(_cpu_s(p.pid) for p in processes) - gateway_cpu
        own_cpu = time.process_time() - own_cpu
        while _count(outboxes, FORWARDED) < n and time.time() < deadline:
            time.sleep(0.1)
        forwarded = time.time()
        stored: list[tuple[str, int, float]] = []
        for path in outboxes:
            engine = create_engine(f"sqlite:///{path}")
            with engine.connect() as conn:
                stored += [
                    (r[0], int(r[1]), float(r[2]))
                    for r in conn.execute(
                        text("SELECT device, seq, stored_at FROM iot_gateway_messages")
                    ).all()
                ]
            engine.dispose()
        sent_at = {(m.device, m.seq): t for m, t in zip(messages, times, strict=True)}
        latencies = sorted(s - sent_at[(d, q)] for d, q, s in stored if (d, q) in sent_at)
        return {
            "seconds": finished - times[0],
            "forward_seconds": forwarded - times[0],
            "gateway_cpu_ms_per_msg": 1000 * gateway_cpu / n,
            "suite_cpu_ms_per_msg": 1000 * own_cpu / n,
            "stored": len(stored),
            "latencies": latencies,
        }
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(15)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run() -> list[dict[str, Any]]:
    broker = os.environ.get("SMARTCITY_MQTT_URL", "mqtt://127.0.0.1:1883")
    work = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    suite = open_suite(
        work / "data",
        services=[
            ServiceEntry(
                "roadhealth",
                "services.roadhealth.app:create_app",
                "services.roadhealth.contract:RoadHealthContract",
            )
        ],
    )
    url, server = _serve(suite.app)
    home = SuiteHome(work / "data")
    ledger = EmbeddedLedger(suite.node)
    results: list[dict[str, Any]] = [
        {
            "name": "ceiling_ed25519_verify_one_core",
            "verifications_per_s": round(ed25519_verifications_per_s(), 1),
        }
    ]
    try:
        city = f"bench{uuid.uuid4().hex[:6]}"
        network = build_network(city=city, n_devices=DEVICES, n_segments=6, seed=21)
        for d in network.devices:
            call(
                ledger,
                home.org_key("road-authority"),
                "roadhealth",
                "register_device",
                {"device": d.id, "pub_key": d.key.public_hex, "vehicle_class": d.vehicle_class},
            )
        fleet = Fleet(network, seed=1)
        samples = network.rate_hz  # one-second windows
        ceiling = _ceiling(
            broker,
            f"{city}c",
            _messages(
                Fleet(build_network(city=f"{city}c", n_devices=DEVICES, n_segments=6, seed=21)),
                MESSAGES,
            ),
        )
        results.append(
            {
                "name": "ceiling_bare_subscriber",
                "messages": MESSAGES,
                "msgs_per_s": round(ceiling, 1),
                "samples_per_s": round(ceiling * samples, 1),
            }
        )
        one_rate = 0.0
        runs: tuple[tuple[int, Encoding], ...] = ((1, "json"), (2, "json"), (1, "cbor"))
        for gateways, encoding in runs:
            fleet.encoding = encoding
            run_ = _run_gateways(work / "data", url, broker, fleet, gateways, work, MESSAGES)
            rate = run_["stored"] / run_["seconds"]
            one_rate = one_rate or rate
            suffix = "" if encoding == "json" else f"_{encoding}"
            results.append(
                {
                    "name": f"e2e_stored_and_anchored_{gateways}_gateway{suffix}",
                    "gateways": gateways,
                    "encoding": encoding,
                    "messages": MESSAGES,
                    "stored": run_["stored"],
                    "msgs_per_s": round(rate, 1),
                    "samples_per_s": round(rate * samples, 1),
                    "ratio_to_ceiling": round(rate / ceiling, 3),
                    "p99_publish_to_stored_s": round(_pct(run_["latencies"], 0.99), 3),
                    "forwarded_msgs_per_s": round(run_["stored"] / run_["forward_seconds"], 1),
                    # CPU per message until stored and anchored: robust when the machine is
                    # shared, unlike the rates (suite = chain, road-health and the publisher)
                    "gateway_cpu_ms_per_msg": round(run_["gateway_cpu_ms_per_msg"], 3),
                    "suite_cpu_ms_per_msg": round(run_["suite_cpu_ms_per_msg"], 3),
                }
            )
        fleet.encoding = "json"
        half = one_rate / 2
        n = int(min(MESSAGES, half * 8))
        run_ = _run_gateways(work / "data", url, broker, fleet, 1, work, n, rate=half)
        lat = run_["latencies"]
        results.append(
            {
                "name": "latency_at_half_load_1_gateway",
                "rate_msgs_per_s": round(half, 1),
                "messages": n,
                "p50_publish_to_stored_s": round(_pct(lat, 0.5), 4),
                "p99_publish_to_stored_s": round(_pct(lat, 0.99), 4),
                "max_publish_to_stored_s": round(lat[-1], 4) if lat else None,
            }
        )
    finally:
        server.should_exit = True
    return results
